package hersh

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// runCtx is the context.Context of one run. A run is the engine's hot path
// (millions a second), so instead of context.WithTimeout (a timer and a
// parent registration per run) it is a small struct living inside the run's
// Context: Err is one atomic load, the done channel and the AfterFunc list
// are made only if someone asks for them, and one watchdog per session
// enforces the run timeout.
type runCtx struct {
	state    atomic.Uint32 // ctxLive, then ctxCanceled or ctxDeadline for good
	deadline int64         // ns since the session's start (see engineClock)
	mu       sync.Mutex    // guards waiters
	waiters  *runWaiters   // made by the first Done or AfterFunc
}

const (
	ctxLive uint32 = iota
	ctxCanceled
	ctxDeadline
)

type runWaiters struct {
	done   chan struct{} // made by Done
	afters []*afterFunc
}

type afterFunc struct{ f func() }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (r *runCtx) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiters == nil {
		r.waiters = &runWaiters{}
	}
	if r.waiters.done == nil {
		// Checked under mu: cancel changes state before it takes mu to
		// close the channel, so a channel made here is closed by it.
		if r.state.Load() != ctxLive {
			return closedChan
		}
		r.waiters.done = make(chan struct{})
	}
	return r.waiters.done
}

func (r *runCtx) Err() error {
	switch r.state.Load() {
	case ctxCanceled:
		return context.Canceled
	case ctxDeadline:
		return context.DeadlineExceeded
	}
	return nil
}

// cancel ends the context with why (ctxCanceled or ctxDeadline); only the
// first call counts.
func (r *runCtx) cancel(why uint32) {
	if !r.state.CompareAndSwap(ctxLive, why) {
		return
	}
	r.mu.Lock()
	var fs []*afterFunc
	if w := r.waiters; w != nil {
		if w.done != nil {
			close(w.done)
		}
		fs, w.afters = w.afters, nil
	}
	r.mu.Unlock()
	for _, a := range fs {
		go a.f()
	}
}

// afterFunc lets context.AfterFunc and contexts derived from a run (say
// context.WithTimeout(c, ...)) hook cancellation without a goroutine.
func (r *runCtx) afterFunc(f func()) (stop func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Load() != ctxLive {
		go f()
		return func() bool { return false }
	}
	if r.waiters == nil {
		r.waiters = &runWaiters{}
	}
	a := &afterFunc{f: f}
	r.waiters.afters = append(r.waiters.afters, a)
	return func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, x := range r.waiters.afters {
			if x == a {
				r.waiters.afters = append(r.waiters.afters[:i], r.waiters.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Context implements context.Context through its run context.

// Deadline reports when the run times out.
func (c *Context) Deadline() (time.Time, bool) {
	if c.rc.deadline == 0 {
		return time.Time{}, false
	}
	return c.s.started.Add(time.Duration(c.rc.deadline)), true
}

// Done is closed when the run times out or the watcher is killed.
func (c *Context) Done() <-chan struct{} { return c.rc.Done() }

// Err reports why Done was closed.
func (c *Context) Err() error { return c.rc.Err() }

// Value returns nil: a run carries no context values.
func (c *Context) Value(key any) any { return nil }

// AfterFunc arranges for f to run (in its own goroutine) once the run's
// context is done; see context.AfterFunc.
func (c *Context) AfterFunc(f func()) (stop func() bool) { return c.rc.afterFunc(f) }

var _ context.Context = (*Context)(nil)

// watchdog enforces Config.RunTimeout for a session with one timer that is
// re-armed only when it fires or after an idle period, not once per run.
// begin and end are lock-free: they sit on the engine's hot path.
type watchdog struct {
	timeout time.Duration
	epoch   time.Time // the session's start: deadlines count from it
	timer   *time.Timer
	armed   atomic.Bool // the timer is set (only the one who sets it may Reset it)
	stopped atomic.Bool
	cur     atomic.Pointer[runCtx] // the in-flight run, nil between runs
}

func (wd *watchdog) init(timeout time.Duration, epoch time.Time) {
	wd.timeout, wd.epoch = timeout, epoch
	wd.timer = time.AfterFunc(time.Hour, wd.fire)
	wd.timer.Stop()
}

// begin watches rc, a run that started at start (ns since epoch).
func (wd *watchdog) begin(rc *runCtx, start int64) {
	rc.deadline = start + int64(wd.timeout)
	wd.cur.Store(rc)
	// Usually armed already: a plain load keeps the run from paying for a
	// locked compare-and-swap.
	if !wd.armed.Load() && !wd.stopped.Load() && wd.armed.CompareAndSwap(false, true) {
		wd.timer.Reset(wd.timeout)
	}
}

// end stops watching the current run.
func (wd *watchdog) end() { wd.cur.Store(nil) }

// cancel cancels the current run, if any (Kill, or Stop past its deadline).
func (wd *watchdog) cancel() {
	if cur := wd.cur.Load(); cur != nil {
		cur.cancel(ctxCanceled)
	}
}

func (wd *watchdog) fire() {
	wd.armed.Store(false)
	cur := wd.cur.Load()
	if cur == nil || wd.stopped.Load() {
		return
	}
	if left := time.Duration(cur.deadline) - time.Since(wd.epoch); left > 0 {
		if wd.armed.CompareAndSwap(false, true) {
			wd.timer.Reset(left)
		}
		return
	}
	cur.cancel(ctxDeadline) // harmless if that run has just ended
}

func (wd *watchdog) stop() {
	wd.stopped.Store(true)
	wd.timer.Stop()
}
