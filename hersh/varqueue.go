package hersh

import (
	"sync"
	"sync/atomic"
)

// varQueue holds the variables with a pending value, each at most once (a
// slot's queued flag sees to it), so it never holds more entries than the
// session has watches and needs no capacity of its own: its memory follows
// the number of watches that changed at once, not SignalCapacity. The
// engine takes everything queued in one swap.
type varQueue struct {
	mu    sync.Mutex
	slots []*varSlot
	n     atomic.Int32  // len(slots), for the WatcherAPI and the engine's check
	wake  chan struct{} // nudges the engine when the queue turns non-empty
}

func newVarQueue() *varQueue { return &varQueue{wake: make(chan struct{}, 1)} }

func (q *varQueue) push(slot *varSlot) {
	q.mu.Lock()
	q.slots = append(q.slots, slot)
	q.n.Store(int32(len(q.slots)))
	first := len(q.slots) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// take returns every queued slot and leaves the queue empty, reusing spare
// (emptied) as its next backing array (engine goroutine only).
func (q *varQueue) take(spare []*varSlot) []*varSlot {
	q.mu.Lock()
	out := q.slots
	q.slots = spare[:0]
	q.n.Store(0)
	q.mu.Unlock()
	return out
}

// pending reports how many variables wait.
func (q *varQueue) pending() int { return int(q.n.Load()) }
