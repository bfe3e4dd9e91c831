package hersh

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Polling: every WatchCall of one interval in a session shares one
// goroutine and one ticker (a thousand polled variables cost one wake-up
// per interval, not a thousand). Quick polls run inline on that goroutine;
// a poll that once took longer than slowPoll (network I/O, say) runs on its
// own goroutine from then on, so it cannot hold the others up. A poll is
// never started while its previous one is still running.

const slowPoll = time.Millisecond

type poller struct {
	step func() // one poll of the variable, publishing a change
	busy atomic.Bool
	slow atomic.Bool
}

type pollGroup struct {
	mu      sync.Mutex
	pollers []*poller
}

// addPoller registers p with the group of its interval (starting the
// group's goroutine on first use) and runs its first poll at once.
func (s *session) addPoller(interval time.Duration, p *poller) {
	s.pollMu.Lock()
	if s.polls == nil {
		s.polls = map[time.Duration]*pollGroup{}
	}
	g, ok := s.polls[interval]
	if !ok {
		g = &pollGroup{}
		s.polls[interval] = g
		s.goWatch(func(ctx context.Context) { s.pollTicks(ctx, g, interval) })
	}
	s.pollMu.Unlock()
	g.mu.Lock()
	g.pollers = append(g.pollers, p)
	g.mu.Unlock()
	p.busy.Store(true)
	s.goWatch(func(context.Context) {
		defer p.busy.Store(false)
		p.step()
	})
}

func (s *session) pollTicks(ctx context.Context, g *pollGroup, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var batch []*poller
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		batch = append(batch[:0], g.pollers...)
		g.mu.Unlock()
		for _, p := range batch {
			if ctx.Err() != nil {
				return
			}
			if !p.busy.CompareAndSwap(false, true) {
				continue // the previous poll is still running
			}
			if p.slow.Load() {
				s.goWatch(func(context.Context) {
					defer p.busy.Store(false)
					p.step()
				})
				continue
			}
			start := time.Now()
			p.step()
			if time.Since(start) > slowPoll {
				p.slow.Store(true)
			}
			p.busy.Store(false)
		}
	}
}
