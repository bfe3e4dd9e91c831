package hersh

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Polling: every WatchCall of one interval in a session shares one
// goroutine and one ticker (a thousand polled variables cost one wake-up
// per interval, not a thousand). Quick polls run inline on that goroutine;
// a poll that takes longer than slowPoll (network I/O, say) runs on its own
// goroutine from then on, so it cannot hold the others up. A poll is never
// started while its previous one is still running.
//
// A hand-written loop spends a few nanoseconds per poll besides the poll
// itself, so the bookkeeping per quick poll must stay as small: two atomic
// loads, no clock reading, no defer. Finding the slow polls:
//   - the first poll of every variable runs on its own goroutine and is
//     timed there, which catches a poll that does I/O before it ever runs
//     inline;
//   - every round of inline polls is timed as a whole; after a round that
//     took longer than slowPoll, the next round times each poll, and the
//     ones that take longer than slowPoll move out. (A poll that turns slow
//     later holds the others up twice: in the round that shows it, and in
//     the round that finds it.)
//
// A panicking poll is recovered once per round, not once per poll: the
// round resumes after it.

const slowPoll = time.Millisecond

type poller struct {
	name string
	step func() // one poll of the variable, publishing a change; may panic
	busy atomic.Bool
	slow atomic.Bool
}

type pollGroup struct {
	mu      sync.Mutex
	pollers []*poller // append-only: a copy of the slice header is a snapshot
}

// addPoller registers p with the group of its interval (starting the
// group's goroutine on first use) and runs its first poll at once, on its
// own goroutine, timed.
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
	p.busy.Store(true) // before the group can see it
	g.mu.Lock()
	g.pollers = append(g.pollers, p)
	g.mu.Unlock()
	s.goWatch(func(context.Context) {
		defer p.busy.Store(false)
		start := time.Now()
		s.pollSafely(p)
		if time.Since(start) > slowPoll {
			p.slow.Store(true)
		}
	})
}

// pollSafely runs one poll, logging a panic as a watch error.
func (s *session) pollSafely(p *poller) {
	defer func() {
		if r := recover(); r != nil {
			s.pollPanicked(p, r)
		}
	}()
	p.step()
}

func (s *session) pollPanicked(p *poller, r any) {
	s.w.logs.watchError(p.name, "poll", &PanicError{Where: "poll", Value: r, Stack: string(debug.Stack())})
}

func (s *session) pollTicks(ctx context.Context, g *pollGroup, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	timeEach := false // the last round was slow: find out which poll made it so
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		round := g.pollers
		g.mu.Unlock()
		start := time.Now()
		for i := 0; i < len(round); {
			if i = s.pollRound(ctx, round, i, timeEach); i < 0 {
				return
			}
		}
		timeEach = time.Since(start) > slowPoll
	}
}

// pollRound runs round[i:] and returns len(round), or the index after a
// poll that panicked (it is logged), or -1 once ctx is done.
func (s *session) pollRound(ctx context.Context, round []*poller, i int, timeEach bool) (next int) {
	defer func() {
		if r := recover(); r != nil {
			s.pollPanicked(round[i], r)
			next = i + 1
		}
	}()
	var last time.Time
	if timeEach {
		last = time.Now()
	}
	for ; i < len(round); i++ {
		if i%64 == 0 && ctx.Err() != nil {
			return -1
		}
		p := round[i]
		// Only this goroutine starts polls once the first one is done,
		// so a quick poller needs no compare-and-swap: busy is set only
		// while its first poll or a slow poll's goroutine runs.
		if p.busy.Load() {
			continue // the previous poll is still running
		}
		if p.slow.Load() {
			p.busy.Store(true)
			s.goWatch(func(context.Context) {
				defer p.busy.Store(false)
				s.pollSafely(p)
			})
			continue
		}
		p.step()
		if timeEach {
			now := time.Now()
			if now.Sub(last) > slowPoll {
				p.slow.Store(true)
			}
			last = now
		}
	}
	return len(round)
}
