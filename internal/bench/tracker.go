package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// tracker follows the Host's event stream (GET /events, as the admin) and
// tells when programs reach a state, timed by the arrival of the event
// that showed it: the moment a client of the Host could know.
type tracker struct {
	mu      sync.Mutex
	latest  map[string]seen
	waiters map[*waiter]struct{}
	err     error // the stream failed for good
	stop    context.CancelFunc
	done    chan struct{}
}

type seen struct {
	p  *client.Program
	at time.Time
}

type waiter struct {
	want   map[string]uint64 // program -> the least seq that counts
	pred   func(*client.Program) bool
	got    map[string]time.Time
	filled chan struct{}
}

func newTracker(ctx context.Context, c *client.Client) *tracker {
	ctx, cancel := context.WithCancel(ctx)
	t := &tracker{latest: map[string]seen{}, waiters: map[*waiter]struct{}{}, stop: cancel, done: make(chan struct{})}
	go t.follow(ctx, c)
	return t
}

// follow reads the stream, opening it again when it ends (an overflow):
// its snapshot brings every program up to date.
func (t *tracker) follow(ctx context.Context, c *client.Client) {
	defer close(t.done)
	for ctx.Err() == nil {
		es, err := c.Events(ctx, client.EventOptions{})
		if err != nil {
			if ctx.Err() == nil {
				t.fail(fmt.Errorf("events: %w", err))
			}
			return
		}
		for {
			ev, err := es.Next()
			if err != nil {
				break
			}
			if ev.Kind == "program" {
				t.saw(ev.Program, time.Now())
			}
		}
		es.Close()
	}
}

func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.err = err
	for w := range t.waiters {
		close(w.filled)
		delete(t.waiters, w)
	}
}

func (t *tracker) saw(p *client.Program, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.latest[p.ProgramID]; ok && old.p.Seq > p.Seq {
		return
	}
	t.latest[p.ProgramID] = seen{p, at}
	for w := range t.waiters {
		if w.offer(p, at) {
			close(w.filled)
			delete(t.waiters, w)
		}
	}
}

// offer records p if w waits for it; it reports whether w is now filled.
func (w *waiter) offer(p *client.Program, at time.Time) bool {
	min, ok := w.want[p.ProgramID]
	if ok && p.Seq >= min && w.pred(p) {
		if _, done := w.got[p.ProgramID]; !done {
			w.got[p.ProgramID] = at
		}
	}
	return len(w.got) == len(w.want)
}

// await waits until each program of want (with a seq at least the one
// given) has satisfied pred, and returns when each was first seen to.
func (t *tracker) await(ctx context.Context, want map[string]uint64, pred func(*client.Program) bool) (map[string]time.Time, error) {
	w := &waiter{want: want, pred: pred, got: map[string]time.Time{}, filled: make(chan struct{})}
	t.mu.Lock()
	if t.err != nil {
		t.mu.Unlock()
		return nil, t.err
	}
	filled := len(want) == 0
	for id := range want {
		if s, ok := t.latest[id]; ok {
			filled = w.offer(s.p, s.at)
		}
	}
	if filled {
		t.mu.Unlock()
		return w.got, nil
	}
	t.waiters[w] = struct{}{}
	t.mu.Unlock()
	select {
	case <-w.filled:
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.err != nil {
			return nil, t.err
		}
		return w.got, nil
	case <-ctx.Done():
		t.mu.Lock()
		delete(t.waiters, w)
		missing := len(want) - len(w.got)
		t.mu.Unlock()
		return nil, fmt.Errorf("%d of %d programs not there: %w", missing, len(want), ctx.Err())
	}
}

// state returns the latest view of a program.
func (t *tracker) state(id string) *client.Program {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.latest[id].p
}

func (t *tracker) close() {
	t.stop()
	<-t.done
}

// inState is a pred: the program is in state s; Error ends the wait badly
// through failIn.
func inState(s string) func(*client.Program) bool {
	return func(p *client.Program) bool { return p.State == s || p.State == "Error" }
}
