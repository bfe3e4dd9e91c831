package builder

import (
	"context"
	"sync"
)

// queue lets at most n builds run at once; the others wait in arrival
// order, and each can be asked its place. A build is heavy (the compiler
// takes every core it may, and memory), so builds past the limit wait
// instead of slowing every build and every program down.
type queue struct {
	mu      sync.Mutex
	free    int
	waiting []*waiter     // in arrival order
	moved   chan struct{} // closed (and replaced) whenever waiting shrinks
}

type waiter struct {
	key   string
	ready chan struct{} // closed when the waiter is given a slot
	seen  int           // the position last reported
}

func newQueue(n int) *queue {
	return &queue{free: n, moved: make(chan struct{})}
}

// shrunk wakes the waiters to report their new places. q.mu is held.
func (q *queue) shrunk() {
	close(q.moved)
	q.moved = make(chan struct{})
}

// wait blocks until a slot is free for key (a build id) or ctx ends, and
// returns the function that gives the slot back. While it waits, report is
// called (from wait's goroutine) with the number of builds ahead, whenever
// that number changes.
func (q *queue) wait(ctx context.Context, key string, report func(ahead int)) (release func(), err error) {
	q.mu.Lock()
	if q.free > 0 && len(q.waiting) == 0 {
		q.free--
		q.mu.Unlock()
		return q.releaser(), nil
	}
	w := &waiter{key: key, ready: make(chan struct{}), seen: -1}
	q.waiting = append(q.waiting, w)
	q.mu.Unlock()
	for {
		q.mu.Lock()
		ahead, moved := q.indexOf(w), q.moved
		q.mu.Unlock()
		if ahead >= 0 && ahead != w.seen {
			w.seen = ahead
			report(ahead + 1)
		}
		select {
		case <-w.ready:
			return q.releaser(), nil
		case <-ctx.Done():
			q.mu.Lock()
			select {
			case <-w.ready: // given a slot just now: give it back
				q.mu.Unlock()
				q.releaser()()
			default:
				q.remove(w)
				q.mu.Unlock()
			}
			return nil, ctx.Err()
		case <-moved:
		}
	}
}

// releaser gives a slot back: to the first waiter, else to the pool.
func (q *queue) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			if len(q.waiting) > 0 {
				next := q.waiting[0]
				q.waiting = q.waiting[1:]
				close(next.ready)
				q.shrunk()
				return
			}
			q.free++
		})
	}
}

func (q *queue) indexOf(w *waiter) int {
	for i, x := range q.waiting {
		if x == w {
			return i
		}
	}
	return -1
}

func (q *queue) remove(w *waiter) {
	if i := q.indexOf(w); i >= 0 {
		q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
		q.shrunk()
	}
}

// Position reports where key's build stands: 0 when it is running or not
// known, n when n-1 builds are ahead of it in the queue.
func (q *queue) position(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.waiting {
		if w.key == key {
			return i + 1
		}
	}
	return 0
}

// QueuePosition reports where the build of buildID stands: 0 when it is
// running, finished or unknown; n when it waits with n-1 builds ahead.
func (b *Builder) QueuePosition(buildID string) int { return b.queue.position(buildID) }
