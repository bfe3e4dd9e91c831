package hersh

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestMsgQueueAcrossChunks: messages come out in order with consecutive
// ids however pushes and pops interleave across chunk boundaries; pending
// counts what was pushed and not yet popped; a queue that drains keeps one
// chunk and reuses it.
func TestMsgQueueAcrossChunks(t *testing.T) {
	var ids atomic.Uint64
	q := newMsgQueue(10*msgChunkLen, &ids)
	at := time.Unix(1, 0).UnixNano()
	next := uint64(1)
	popN := func(n int) {
		t.Helper()
		for range n {
			var m Message
			ok := q.ready()
			if ok {
				q.pop(&m)
			}
			if !ok || m.ID != next || m.Content != "m" || m.ReceivedAt.UnixNano() != at {
				t.Fatalf("pop = %+v, %v; want id %d", m, ok, next)
			}
			next++
		}
	}
	pushN := func(n int) {
		t.Helper()
		for range n {
			if err := q.push(nil, "m", at, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if q.ready() {
		t.Fatal("an empty queue is ready")
	}
	// Interleavings that end a batch inside a chunk, at its end, and that
	// leave the engine several chunks behind.
	for _, step := range []struct{ push, pop int }{
		{1, 1}, {msgChunkLen - 1, msgChunkLen - 2}, {2, 3}, {3*msgChunkLen + 5, 2 * msgChunkLen},
		{msgChunkLen, msgChunkLen}, {0, msgChunkLen + 5}, {7, 7},
	} {
		pushN(step.push)
		popN(step.pop)
		if got, want := q.pending(), int(ids.Load()-next+1); got != want {
			t.Fatalf("pending = %d, want %d", got, want)
		}
	}
	if q.ready() {
		t.Fatal("a drained queue is ready")
	}
	if q.head != q.tail || q.head.next != nil || q.head.n != 0 {
		t.Fatalf("a drained queue holds more than one empty chunk: head %p tail %p", q.head, q.tail)
	}
	// The kept chunk is reused: no new chunk for a message that fits.
	held := q.head
	pushN(1)
	popN(1)
	if q.head != held {
		t.Fatal("a queue that never backs up took a new chunk")
	}
}

// TestMsgQueueFullAcrossChunks: the capacity holds when it is not a
// multiple of the chunk size, a waiting sender gets in as soon as one
// message is taken, and one that gives up leaves nothing behind.
func TestMsgQueueFullAcrossChunks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ids atomic.Uint64
		capacity := msgChunkLen + 3
		q := newMsgQueue(capacity, &ids)
		for range capacity {
			if err := q.push(nil, "m", time.Now().UnixNano(), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.push(nil, "over", time.Now().UnixNano(), nil); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("push past capacity = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := q.push(ctx, "over", time.Now().UnixNano(), nil); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("push past capacity with a deadline = %v", err)
		}
		got := make(chan error, 1)
		go func() { got <- q.push(context.Background(), "waited", time.Now().UnixNano(), nil) }()
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("a sender got into a full queue: %v", err)
		default:
		}
		var m Message
		if ok := q.ready(); !ok {
			t.Fatal("a full queue is not ready")
		}
		if q.pop(&m); m.ID != 1 {
			t.Fatalf("pop = %+v", m)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if q.pending() != capacity {
			t.Fatalf("pending = %d, want %d", q.pending(), capacity)
		}
		var last Message
		for q.ready() {
			q.pop(&last)
		}
		if last.Content != "waited" || last.ID != uint64(capacity)+1 {
			t.Fatalf("last = %+v", last)
		}
	})
}
