package hersh

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// msgQueue is the bounded FIFO of user messages: a linked list of chunks of
// msgChunkLen messages. Producers append under a mutex; the engine reads
// without it everything it saw written the last time it took the lock, so
// on a busy queue the two sides meet once per batch instead of once per
// message (a channel locks for every element on both sides).
//
// Chunks instead of one slice: the queue takes memory only for what is
// queued (an idle watcher holds one chunk at most, not SignalCapacity
// slots), and growing it never copies queued messages under the lock. A
// chunk the engine has read to the end goes back to a pool shared by all
// watchers, so a burst's chunks serve the next burst, anybody's.
//
// Each message gets its id under the lock, so ids increase in queue order,
// which is run order, however many producers there are.
type msgQueue struct {
	capacity int

	// Producer side.
	mu         sync.Mutex
	ids        *atomic.Uint64 // the watcher's message ids (ids outlive a session)
	tail       *msgChunk      // where producers write; nil until the first message
	pushed     atomic.Int64   // messages ever queued (written under mu)
	seenPopped int64          // popped as last read (under mu); it only grows
	idle       bool           // the engine found the queue empty and may wait on wake
	space      chan struct{}  // closed when room appears, if a sender waits
	wake       chan struct{}  // nudges the engine when it may be waiting for a message
	_          [64]byte

	// Engine side. Producers write none of it, so the engine's per-message
	// bookkeeping stays in its own cache; only a full queue makes the two
	// sides read each other's counters.
	popped  atomic.Int64 // messages ever taken by the engine
	waiting atomic.Bool  // a sender waits for room (set under mu)
	head    *msgChunk    // the chunk the engine reads; set from nil once, under mu
	read    int          // next entry of head to read
	avail   int          // entries of head known written (head.n when last locked)
}

// msgChunkLen messages (32 bytes each) make a 4 KiB chunk.
const msgChunkLen = 128

type msgChunk struct {
	items [msgChunkLen]queuedMsg
	n     int       // entries written (under msgQueue.mu)
	next  *msgChunk // the chunk written after this one (under msgQueue.mu)
}

// queuedMsg is a Message as the queue keeps it: 32 bytes with one pointer
// instead of 48 with two (the time's location), which is less to copy in
// and out and less for the write barriers while a collection runs.
type queuedMsg struct {
	id      uint64
	content string
	at      int64 // unix ns
}

var msgChunks = sync.Pool{New: func() any { return new(msgChunk) }}

func newMsgQueue(capacity int, ids *atomic.Uint64) *msgQueue {
	return &msgQueue{capacity: capacity, ids: ids, idle: true, wake: make(chan struct{}, 1)}
}

// push appends a message with content, received at at (unix ns), and gives it the
// next id. When the queue is full it waits for room until ctx or closed is
// done; with a nil ctx it does not wait and returns errFull at once.
func (q *msgQueue) push(ctx context.Context, content string, at int64, closed <-chan struct{}) error {
	for {
		q.mu.Lock()
		if q.room() {
			t := q.tail
			if t == nil || t.n == msgChunkLen {
				c := msgChunks.Get().(*msgChunk)
				if t == nil {
					q.head = c // the engine reads head only after taking mu
				} else {
					t.next = c
				}
				q.tail, t = c, c
			}
			t.items[t.n] = queuedMsg{id: q.ids.Add(1), content: content, at: at}
			t.n++
			q.pushed.Store(q.pushed.Load() + 1)
			wake := q.idle
			q.idle = false
			q.mu.Unlock()
			if wake {
				select {
				case q.wake <- struct{}{}:
				default:
				}
			}
			return nil
		}
		if ctx == nil {
			q.mu.Unlock()
			return errFull
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		var err error
		select {
		case <-space:
		case <-ctx.Done():
			err = errFull
		case <-closed:
			err = ErrNotRunning
		}
		if err != nil {
			return err
		}
	}
}

// room reports whether one more message fits (mu held). It reads the
// engine's counter only when the last value read says the queue is full.
// When it is, it first raises waiting, so that either this check sees the
// engine's latest pop or the engine sees the flag and wakes the waiters.
func (q *msgQueue) room() bool {
	pushed := q.pushed.Load()
	if pushed-q.seenPopped < int64(q.capacity) {
		return true
	}
	q.waiting.Store(true)
	q.seenPopped = q.popped.Load()
	return pushed-q.seenPopped < int64(q.capacity)
}

// errFull is push's report that the queue stayed full.
var errFull = ErrQueueFull

// buffered reports whether messages the engine has already seen queued
// wait, without taking the lock (engine goroutine only).
func (q *msgQueue) buffered() bool { return q.read < q.avail }

// ready reports whether a message waits (engine goroutine only).
func (q *msgQueue) ready() bool { return q.read < q.avail || q.refill() }

// pop moves the next message into m (engine goroutine only, after ready).
func (q *msgQueue) pop(m *Message) {
	h := q.head
	e := &h.items[q.read]
	*m = Message{ID: e.id, Content: e.content, ReceivedAt: time.Unix(0, e.at)}
	*e = queuedMsg{} // let the content go; the chunk is reused
	q.read++
	q.popped.Store(q.popped.Load() + 1)
	if q.waiting.Load() { // a sender found the queue full: let it look again
		q.mu.Lock()
		q.waiting.Store(false)
		if q.space != nil {
			close(q.space)
			q.space = nil
		}
		q.mu.Unlock()
	}
}

// refill takes the lock to learn what producers have written since the
// engine last looked, moving past chunks read to the end. It reports
// whether there is something to read; if not, the engine may wait on wake.
func (q *msgQueue) refill() bool {
	var done *msgChunk // chunks read to the end, chained through next
	q.mu.Lock()
	ok := false
	for {
		h := q.head
		if h == nil {
			break
		}
		if q.read < h.n {
			q.avail, ok = h.n, true
			break
		}
		if h == q.tail {
			// Everything written has been read: start the chunk over, so a
			// queue that never backs up keeps using the same memory.
			h.n, q.read, q.avail = 0, 0, 0
			break
		}
		// A full chunk read to the end: the next one holds newer messages.
		q.head = h.next
		h.n, h.next, done = 0, done, h
		q.read, q.avail = 0, 0
	}
	q.idle = !ok
	q.mu.Unlock()
	for done != nil {
		next := done.next
		done.next = nil
		msgChunks.Put(done)
		done = next
	}
	return ok
}

// pending reports how many messages wait (including the engine's batch).
// popped is read first: pushed only grows, so the difference is never
// negative.
func (q *msgQueue) pending() int {
	popped := q.popped.Load()
	return int(q.pushed.Load() - popped)
}
