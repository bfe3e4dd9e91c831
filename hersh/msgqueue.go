package hersh

import (
	"context"
	"sync"
	"sync/atomic"
)

// msgQueue is the bounded FIFO of user messages. Producers append under a
// mutex; the engine takes everything queued in one swap and works through
// it, so on a busy queue the two sides meet once per batch instead of once
// per message (a channel locks for every element on both sides). It also
// lets the WatcherAPI count pending messages without touching them.
type msgQueue struct {
	capacity int
	n        atomic.Int64 // queued + taken by the engine but not yet run
	_        [48]byte

	mu      sync.Mutex
	items   []Message
	space   chan struct{} // closed when room appears, if a sender waits
	waiters int

	wake chan struct{} // nudges the engine when the queue turns non-empty
	_    [40]byte

	local []Message // the engine's current batch (engine goroutine only)
	next  int
}

func newMsgQueue(capacity int) *msgQueue {
	return &msgQueue{capacity: capacity, wake: make(chan struct{}, 1)}
}

// push appends m, waiting for room until ctx or closed is done.
func (q *msgQueue) push(ctx context.Context, m Message, closed <-chan struct{}) error {
	for {
		q.mu.Lock()
		if q.n.Load() < int64(q.capacity) {
			q.items = append(q.items, m)
			q.n.Add(1)
			first := len(q.items) == 1
			q.mu.Unlock()
			if first {
				select {
				case q.wake <- struct{}{}:
				default:
				}
			}
			return nil
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.waiters++
		q.mu.Unlock()
		var err error
		select {
		case <-space:
		case <-ctx.Done():
			err = errFull
		case <-closed:
			err = ErrNotRunning
		}
		q.mu.Lock()
		q.waiters--
		q.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// errFull is push's report that ctx ended while the queue stayed full.
var errFull = ErrQueueFull

// pop returns the next message (engine goroutine only).
func (q *msgQueue) pop() (Message, bool) {
	if q.next == len(q.local) {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.mu.Unlock()
			return Message{}, false
		}
		clear(q.local)
		q.local, q.items = q.items, q.local[:0]
		q.mu.Unlock()
		q.next = 0
	}
	m := q.local[q.next]
	q.local[q.next] = Message{}
	q.next++
	q.n.Add(-1)
	if q.n.Load() == int64(q.capacity-1) { // it was full: wake waiting senders
		q.mu.Lock()
		if q.waiters > 0 && q.space != nil {
			close(q.space)
			q.space = nil
		}
		q.mu.Unlock()
	}
	return m, true
}

// pending reports how many messages wait (including the engine's batch).
func (q *msgQueue) pending() int { return int(q.n.Load()) }
