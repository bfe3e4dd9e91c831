package hersh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A session is one Start-to-end life of a watcher. It owns the signal
// queues, the watches and the API listener, so a restart after Stop begins
// with none of the previous session's goroutines or queued signals.
//
// One goroutine (loop) takes signals in strict priority order (system, then
// user messages, then variables) and runs the managed function inline, so
// two runs never overlap. Producers (Send, watch goroutines) never touch
// engine state: they only enqueue.
type session struct {
	w       *Watcher
	cleanup CleanupFunc

	ctx    context.Context // cancelled at teardown, or at once by Kill
	cancel context.CancelFunc

	msgs    *msgQueue     // user messages, FIFO, bounded
	vars    *varQueue     // variables with a pending value; each slot at most once
	sysWake chan struct{} // nudges the loop after a stop or kill request

	// Read by producers on every Send, written rarely: kept off the cache
	// line the engine writes on every run.
	stopReq atomic.Int32 // reqNone, reqStop, reqKill
	closing atomic.Bool  // no more messages accepted
	_       [56]byte

	st      atomic.Int32 // State
	phase   State        // last state written to the reduce log (engine goroutine)
	fails   atomic.Int32 // consecutive failures
	started time.Time
	updated atomic.Int64 // unix nanos of the last state change or run

	wd  watchdog    // enforces RunTimeout on the in-flight run
	clk engineClock // the engine's clock (engine goroutine only)

	pollMu sync.Mutex
	polls  map[time.Duration]*pollGroup // WatchCall groups by interval (poll.go)

	hooksMu   sync.RWMutex
	hooks     map[string]*hook
	used      map[string]uint64 // the run that last used each hook name (markUsed)
	usedLimit int
	watches   []*hook // registration order
	memos     int

	runErrs []error     // hook errors of the in-flight run (Context.fail)
	recover *time.Timer // backoff timer while in WaitRecover
	batch   []*varSlot  // reused by drainVars

	wg    sync.WaitGroup // watch goroutines and the persister
	apiLn net.Listener
	api   *http.Server
	apiWG sync.WaitGroup

	done chan struct{} // closed after teardown
	err  error         // set before done is closed
}

const (
	reqNone int32 = iota
	reqStop
	reqKill
)

func newSession(w *Watcher, cleanup CleanupFunc) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		w:       w,
		cleanup: cleanup,
		ctx:     ctx,
		cancel:  cancel,
		msgs:    newMsgQueue(w.cfg.SignalCapacity, &w.msgSeq),
		vars:    newVarQueue(),
		sysWake: make(chan struct{}, 1),
		hooks:   make(map[string]*hook),
		used:    make(map[string]uint64),
		started: time.Now(),
		done:    make(chan struct{}),
	}
	s.clk = newEngineClock(s.started)
	s.wd.init(w.cfg.RunTimeout, s.started)
	s.st.Store(int32(StateNotRun))
	s.touch(s.started.UnixNano())
	return s
}

func (s *session) state() State { return State(s.st.Load()) }

func (s *session) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) touch(unixNano int64) { s.updated.Store(unixNano) }

// now is the engine's clock as a time, for the logs.
func (s *session) now() time.Time { return s.clk.time(s.clk.read()) }

// transition records a lifecycle change in the reduce log. The Ready and
// Running churn of ordinary runs is not a phase change and is not logged.
func (s *session) transition(to State, reason string) {
	s.st.Store(int32(to))
	s.touch(s.clk.unixNano(s.clk.read()))
	from := s.phase
	if from == to {
		return
	}
	s.phase = to
	l := s.w.logs
	l.reduces.Push(ReduceLog{ID: l.id(), Time: s.now(), From: from, To: to, Reason: reason})
}

// request records a stop or kill; the stronger request wins.
func (s *session) request(kind int32) {
	for {
		cur := s.stopReq.Load()
		if cur >= kind || s.stopReq.CompareAndSwap(cur, kind) {
			break
		}
	}
	s.closing.Store(true)
	if kind == reqKill {
		s.cancel()    // every watch, now
		s.wd.cancel() // and the in-flight run
	}
	select {
	case s.sysWake <- struct{}{}:
	default:
	}
	s.w.noteSignal(SignalSystem, map[int32]string{reqStop: "stop", reqKill: "kill"}[kind], s.w.clock.unixNano())
}

func (s *session) cancelRun() { s.wd.cancel() }

// loop is the engine: it runs until a stop, a kill or a control error ends
// the session, then tears everything down.
func (s *session) loop() {
	final, cause := s.serve()
	s.teardown(final, cause)
}

func (s *session) serve() (State, error) {
	if end, st, err := s.run(TriggerStart, nil); end {
		return st, err
	}
	for {
		// System signals first.
		if req := s.stopReq.Load(); req != reqNone {
			return s.requested(req)
		}
		if s.recover != nil {
			select {
			case <-s.sysWake:
				s.clk.stale()
			case <-s.recover.C:
				s.recover = nil
				s.clk.stale()
				if end, st, err := s.run(TriggerRecovery, nil); end {
					return st, err
				}
			}
			continue
		}
		// Then user messages, one run each, in order.
		if s.msgs.ready() {
			if end, st, err := s.run(TriggerMessage, nil); end {
				return st, err
			}
			continue
		}
		// Then variables: every pending one is applied, then one run.
		if s.vars.pending() > 0 {
			if end, st, err := s.drainVars(); end {
				return st, err
			}
			continue
		}
		// Nothing pending: wait. Whatever arrives is handled at the top of
		// the loop, so priority holds even when several queues fill at once.
		select {
		case <-s.sysWake:
		case <-s.msgs.wake:
		case <-s.vars.wake:
		}
		s.clk.stale()
	}
}

func (s *session) requested(req int32) (State, error) {
	if req == reqKill {
		return StateKilled, &KillError{Reason: "killed by request"}
	}
	return StateStopped, nil
}

func (s *session) drainVars() (bool, State, error) {
	batch := s.vars.take(s.batch)
	var changed []string
	now := s.now()
	for _, slot := range batch {
		if slot.apply(now) {
			changed = append(changed, slot.name)
		}
	}
	clear(batch)
	s.batch = batch[:0]
	if len(changed) == 0 {
		return false, 0, nil // only skip-signal values: stored, no run
	}
	slices.Sort(changed)
	return s.run(TriggerVars, changed)
}

// run executes the managed function once and settles its result. It
// reports whether the session must end, and how. It is the hot path: one
// allocation (the Context, which holds the run's context and message) and
// one clock reading per run while a backlog is worked through.
func (s *session) run(kind TriggerKind, vars []string) (bool, State, error) {
	w := s.w
	id := w.runSeq.Add(1)
	if kind == TriggerStart {
		s.transition(StateInitRun, "initial run")
	} else if s.st.Load() != int32(StateRunning) {
		s.st.Store(int32(StateRunning))
	}
	start := s.clk.read()
	c := &Context{s: s, runID: id, kind: kind, vars: vars}
	if kind == TriggerMessage {
		s.msgs.pop(&c.msg) // straight into the Context: one copy
	}
	if s.stopReq.Load() == reqKill { // killed before the run began (Kill sets it, then cancels s.ctx)
		c.rc.cancel(ctxCanceled)
	}
	s.wd.begin(&c.rc, start)
	err := callManaged(w.managed, c)
	s.wd.end() // from here on c is stale: hooks through it are misuse
	if c.rc.state.Load() == ctxDeadline {
		err = &TimeoutError{Timeout: w.cfg.RunTimeout.String(), Err: err}
	}
	if len(s.runErrs) > 0 {
		errs := append(s.runErrs, err)
		err = errors.Join(errs...)
		clear(errs)
		s.runErrs = errs[:0]
	}
	s.clk.stale()
	end := s.clk.read()
	s.touch(s.clk.unixNano(end))

	stop, final, cause := s.settle(err)
	rec := runRecord{
		id: w.logs.id(), runID: id, trigger: uint8(kind), vars: vars,
		startedAt: s.clk.unixNano(start), duration: time.Duration(end - start),
		failures: s.fails.Load(), stateAfter: uint8(s.state()),
	}
	if kind == TriggerMessage {
		rec.messageID, rec.message = c.msg.ID, c.msg.Content
	}
	if err != nil {
		rec.failure = &runFailure{err: err.Error()}
		if p, ok := asPanic(err); ok {
			rec.failure.stack = p.Stack
		}
	}
	if stop {
		rec.stateAfter = uint8(final)
	}
	w.logs.results.Push(rec)
	return stop, final, cause
}

// settle applies a run's result to the engine state: success resets the
// failure count, a control error ends the session, another error schedules
// a recovery run after backoff or, past the limit, crashes.
func (s *session) settle(err error) (bool, State, error) {
	if err == nil { // the common case, without the errors.As allocations below
		if req := s.stopReq.Load(); req != reqNone {
			return s.endRequested(req)
		}
		if s.fails.Load() != 0 {
			s.fails.Store(0)
		}
		if s.phase == StateReady {
			// While the engine works through messages it has already seen
			// queued, it stays Running between runs: two stores per run
			// saved, and nobody is told it is idle when it is not.
			if !s.msgs.buffered() {
				s.st.Store(int32(StateReady))
			}
		} else {
			s.transition(StateReady, "")
		}
		return false, 0, nil
	}
	var (
		crash *CrashError
		kill  *KillError
		stop  *StopError
	)
	// The session ends with err itself, not the control error found in it,
	// so context a caller wrapped around it ("saving report: ...") is kept.
	switch {
	case errors.As(err, &crash):
		return true, StateCrashed, err
	case errors.As(err, &kill):
		return true, StateKilled, err
	case s.stopReq.Load() == reqKill:
		return s.endRequested(reqKill)
	case errors.As(err, &stop):
		return true, StateStopped, nil
	case s.stopReq.Load() == reqStop:
		return s.endRequested(reqStop)
	}
	n := int(s.fails.Add(1))
	rc := s.w.cfg.Recovery
	if n >= rc.MaxFailures {
		return true, StateCrashed, &CrashError{Reason: fmt.Sprintf("%d consecutive failures", n), Err: err}
	}
	d := backoff(rc, n, rand.Float64())
	s.recover = time.NewTimer(d)
	detail := fmt.Sprintf("failure %d of %d, retry in %s: %v", n, rc.MaxFailures, d, err)
	s.transition(StateWaitRecover, detail)
	l := s.w.logs
	l.effects.Push(EffectLog{ID: l.id(), Time: s.now(), Effect: "schedule-recovery", Detail: detail})
	return false, 0, nil
}

func (s *session) endRequested(req int32) (bool, State, error) {
	st, err := s.requested(req)
	return true, st, err
}

// backoff is the wait after the n-th consecutive failure (n >= 1):
// Base*2^(n-1) capped at Max, then shortened by up to Jitter of itself
// (r in [0,1)), so the cap is never exceeded.
func backoff(rc RecoveryConfig, n int, r float64) time.Duration {
	d := rc.Base
	for i := 1; i < n && d < rc.Max; i++ {
		d *= 2
	}
	if d > rc.Max {
		d = rc.Max
	}
	return d - time.Duration(float64(d)*rc.Jitter*r)
}

// teardown ends every goroutine the session started, runs cleanup, saves
// context state and closes the API listener, in that order.
func (s *session) teardown(final State, cause error) {
	w := s.w
	s.closing.Store(true)
	s.cancel()
	s.wd.stop()
	s.clk.stale()
	if s.recover != nil {
		s.recover.Stop()
	}
	if dropped := s.msgs.pending(); dropped > 0 {
		l := w.logs
		l.effects.Push(EffectLog{ID: l.id(), Time: time.Now(), Effect: "discard", Detail: fmt.Sprintf("%d queued messages", dropped)})
	}
	if !waitTimeout(&s.wg, w.cfg.CleanupTimeout) {
		w.logs.watchError("", "teardown", errors.New("a watch function did not return after its context was cancelled; abandoned"))
	}
	if s.cleanup != nil {
		c := &Context{s: s, runID: w.runSeq.Load(), kind: TriggerCleanup}
		c.rc.deadline = int64(time.Since(s.started) + w.cfg.CleanupTimeout)
		timer := time.AfterFunc(w.cfg.CleanupTimeout, func() { c.rc.cancel(ctxDeadline) })
		l := w.logs
		l.effects.Push(EffectLog{ID: l.id(), Time: time.Now(), Effect: "cleanup", Detail: final.String()})
		if err := callCleanup(s.cleanup, c, cause); err != nil {
			l.watchError("", "cleanup", err)
		}
		timer.Stop()
		c.rc.cancel(ctxCanceled)
	}
	w.store.flush()
	if s.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), defaultAPIShutdownGrace)
		if s.api.Shutdown(ctx) != nil {
			s.api.Close()
		}
		cancel()
		s.apiWG.Wait()
	}
	reason := "stopped"
	if cause != nil {
		reason = cause.Error()
	}
	s.err = cause
	w.mu.Lock()
	if final.Final() {
		w.final = final
	}
	w.mu.Unlock()
	s.transition(final, reason)
	w.cur.CompareAndSwap(s, nil)
	close(s.done)
}

// startBackground starts the goroutines that live as long as the session
// and are not watches: the durable-state writer.
func (s *session) startBackground() {
	if !s.w.store.durable() {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.w.store.persistLoop(s.ctx)
	}()
}

func (s *session) serveAPI(ln net.Listener, h http.Handler) {
	s.apiLn = ln
	s.api = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	s.apiWG.Add(1)
	go func() {
		defer s.apiWG.Done()
		_ = s.api.Serve(ln) // returns http.ErrServerClosed at teardown
	}()
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// callManaged runs user code, turning a panic into a *PanicError.
func callManaged(fn ManagedFunc, c *Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: "run", Value: r, Stack: string(debug.Stack())}
		}
	}()
	return fn(c)
}

func callCleanup(fn CleanupFunc, c *Context, cause error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: "cleanup", Value: r, Stack: string(debug.Stack())}
		}
	}()
	fn(c, cause)
	return nil
}

func asPanic(err error) (*PanicError, bool) {
	var p *PanicError
	ok := errors.As(err, &p)
	return p, ok
}
