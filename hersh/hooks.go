package hersh

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Hooks: watches and memos are declared by calling them inside the managed
// function, by name. The first call registers them; later calls return the
// current value. A name keeps its kind, type and settings for the whole
// session; breaking that (the "rules of hooks") fails the run with a
// *HookError instead of panicking. A watch that is not called in some run
// stays active: conditional reads are allowed.

const (
	kindCall = "WatchCall"
	kindFlow = "WatchFlow"
	kindTick = "WatchTick"
	kindMemo = "Memo"
)

type hook struct {
	kind     string
	name     string
	typ      any           // (*T)(nil): identifies the value type
	interval time.Duration // WatchCall, WatchTick
	source   any           // WatchFlow: the channel
	slot     *varSlot      // watches
	memo     any           // Memo
}

// varSlot carries a watched variable from its producer goroutine to the
// engine. Producers overwrite the pending value (so a burst coalesces to the
// latest), and the slot sits in the variable queue at most once.
type varSlot struct {
	name string

	mu         sync.Mutex
	pending    any
	hasPending bool
	trigger    bool // some pending value asked for a run
	queued     bool
	value      any // applied by the engine; what the hook returns
	hasValue   bool
	updatedAt  time.Time
}

// publish stores v as the slot's pending value and queues the slot for the
// engine. trigger=false stores v without asking for a run (skip-signal).
func (s *session) publish(slot *varSlot, v any, trigger bool) {
	slot.mu.Lock()
	slot.pending, slot.hasPending = v, true
	slot.trigger = slot.trigger || trigger
	enqueue := !slot.queued
	slot.queued = true
	slot.mu.Unlock()
	if enqueue {
		s.w.noteSignal(SignalVar, slot.name, s.w.clock.unixNano())
		s.vars.push(slot)
	}
}

// apply moves the pending value to the visible one (engine goroutine only)
// and reports whether it asked for a run.
func (v *varSlot) apply(now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hasPending {
		v.value, v.hasValue, v.updatedAt = v.pending, true, now
	}
	trig := v.trigger
	v.pending, v.hasPending, v.trigger, v.queued = nil, false, false, false
	return trig
}

func (v *varSlot) get() (any, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.value, v.hasValue
}

// register returns the hook named name, creating it with mk on first use.
// It checks the kind and type against an existing hook.
// Misuse is recorded on c (the run fails with it) and returned.
func register[T any](c *Context, kind, name string, mk func() *hook) (*hook, error) {
	if err := c.hookCheck(kind, name); err != nil {
		return nil, err
	}
	s := c.s
	s.hooksMu.Lock()
	if s.markUsed(name, c.runID) {
		s.hooksMu.Unlock()
		return nil, c.fail(&HookError{Name: name, Kind: kind, Reason: "used twice in one run"})
	}
	h, ok := s.hooks[name]
	if !ok {
		h = mk()
		h.kind, h.name, h.typ = kind, name, (*T)(nil)
		if kind == kindMemo {
			if s.memos >= s.w.cfg.MaxMemoEntries {
				s.hooksMu.Unlock()
				return nil, fmt.Errorf("%w (%d entries): %q", ErrMemoFull, s.w.cfg.MaxMemoEntries, name)
			}
			s.memos++
		}
		s.hooks[name] = h
		if h.slot != nil {
			s.watches = append(s.watches, h)
		}
		s.hooksMu.Unlock()
		return h, nil
	}
	s.hooksMu.Unlock()
	if h.kind != kind {
		return nil, c.fail(&HookError{Name: name, Kind: kind, Reason: "name already used by a " + h.kind})
	}
	if _, same := h.typ.(*T); !same {
		return nil, c.fail(&HookError{Name: name, Kind: kind, Reason: fmt.Sprintf("declared with type %T before, now %T", h.typ, (*T)(nil))})
	}
	return h, nil
}

// markUsed records that run used name and reports whether it already had
// (hooksMu held). One table for the session, instead of a set per run, so
// runs that use hooks allocate nothing for the check. Entries of earlier
// runs are dropped when the table has grown well past the hooks it serves.
func (s *session) markUsed(name string, run uint64) bool {
	if s.used[name] == run {
		return true
	}
	if len(s.used) >= s.usedLimit {
		for k, r := range s.used {
			if r != run {
				delete(s.used, k)
			}
		}
		s.usedLimit = 2*len(s.used) + 64
	}
	s.used[name] = run
	return false
}

func typed[T any](v any, ok bool) (T, bool) {
	t, isT := v.(T)
	return t, ok && isT
}

// WatchCall polls poll every interval (the first poll starts at once; the
// watches of one interval then poll together, on one shared ticker) and
// re-runs the managed function when poll reports a change. poll receives the
// previous value it produced (zero at first), so state-dependent updates are
// all applied, in order, none lost: while a slow run executes, updates
// accumulate in the value and the next run sees their result.
//
// Quick polls of one interval run one after another on that shared
// goroutine. A poll that takes longer than a millisecond (one doing I/O,
// say: found on its first call, or soon after it turns slow) runs on its
// own goroutine from then on, so it cannot hold the others up. A poll never
// starts while its previous one is still running.
//
// It returns the latest value and whether there has been one yet. A poll
// that errs or panics is logged as a watch error and polling goes on.
func WatchCall[T any](c *Context, name string, interval time.Duration, poll func(ctx context.Context, prev T) (next T, changed bool, err error)) (T, bool) {
	var zero T
	if interval <= 0 || poll == nil {
		c.fail(&HookError{Name: name, Kind: kindCall, Reason: "needs a positive interval and a poll function"})
		return zero, false
	}
	h, err := register[T](c, kindCall, name, func() *hook {
		slot := &varSlot{name: name}
		c.s.addPoller(interval, &poller{name: name, step: pollStep(c.s, slot, poll)})
		return &hook{interval: interval, slot: slot}
	})
	if err != nil {
		return zero, false
	}
	if h.interval != interval {
		c.fail(&HookError{Name: name, Kind: kindCall, Reason: fmt.Sprintf("interval changed from %s to %s", h.interval, interval)})
		return zero, false
	}
	return typed[T](h.slot.get())
}

// pollStep returns one poll of a variable: it calls poll with the value
// the previous poll produced and publishes a change. Steps of one variable
// never run concurrently (see poller.busy), so cur needs no lock. A panic
// in poll is not recovered here: the caller recovers it (poll.go), once per
// round of polls rather than once per poll.
func pollStep[T any](s *session, slot *varSlot, poll func(context.Context, T) (T, bool, error)) func() {
	var cur T
	return func() {
		next, changed, err := poll(s.ctx, cur)
		switch {
		case err != nil:
			if s.ctx.Err() == nil {
				s.w.logs.watchError(slot.name, "poll", err)
			}
		case changed:
			cur = next
			s.publish(slot, next, true)
		}
	}
}

// FlowValue is an element of a channel watched by WatchFlowValues. With
// SkipSignal set the value is stored (later runs and the API see it) but
// does not cause a run by itself.
type FlowValue[T any] struct {
	Value      T
	SkipSignal bool
}

// flowBatch bounds how many waiting values one publish takes in.
const flowBatch = 1024

// WatchFlow re-runs the managed function when ch delivers a value. Values
// that arrive while a run executes coalesce: the next run sees the latest.
// It returns the latest value and whether there has been one yet. When ch is
// closed the last value stays.
func WatchFlow[T any](c *Context, name string, ch <-chan T) (T, bool) {
	return watchFlow(c, name, ch, func(v T) (T, bool) { return v, true })
}

// WatchFlowValues is WatchFlow for channels whose values may be marked
// SkipSignal.
func WatchFlowValues[T any](c *Context, name string, ch <-chan FlowValue[T]) (T, bool) {
	return watchFlow(c, name, ch, func(v FlowValue[T]) (T, bool) { return v.Value, !v.SkipSignal })
}

func watchFlow[T, E any](c *Context, name string, ch <-chan E, unpack func(E) (T, bool)) (T, bool) {
	var zero T
	if ch == nil {
		c.fail(&HookError{Name: name, Kind: kindFlow, Reason: "nil channel"})
		return zero, false
	}
	h, err := register[T](c, kindFlow, name, func() *hook {
		slot := &varSlot{name: name}
		c.s.goWatch(func(ctx context.Context) {
			for {
				select {
				case <-ctx.Done():
					return
				case e, open := <-ch:
					if !open {
						return
					}
					// Take what else is already waiting: a burst is published
					// once, as its latest value (a skip-signal value only
					// triggers if a triggering one came with it).
					v, trigger := unpack(e)
				drain:
					for range flowBatch {
						select {
						case e, open = <-ch:
							if !open {
								c.s.publish(slot, v, trigger)
								return
							}
							next, t := unpack(e)
							v, trigger = next, trigger || t
						default:
							break drain
						}
					}
					c.s.publish(slot, v, trigger)
				}
			}
		})
		return &hook{source: ch, slot: slot}
	})
	if err != nil {
		return zero, false
	}
	if h.source != any(ch) {
		c.fail(&HookError{Name: name, Kind: kindFlow, Reason: "called with a different channel than before"})
		return zero, false
	}
	return typed[T](h.slot.get())
}

// Tick is the value of a WatchTick variable.
type Tick struct {
	// Count is the number of whole intervals elapsed since the watch was
	// registered, computed from the clock: if runs are slow, ticks coalesce
	// into one run and Count jumps, so no interval is ever lost or counted twice.
	Count int64     `json:"count"`
	Time  time.Time `json:"time"`  // when this tick fired
	Start time.Time `json:"start"` // when the watch was registered
}

// WatchTick re-runs the managed function every interval. The first call
// registers the ticker and returns Count 0.
func WatchTick(c *Context, name string, interval time.Duration) Tick {
	if interval <= 0 {
		c.fail(&HookError{Name: name, Kind: kindTick, Reason: "needs a positive interval"})
		return Tick{}
	}
	h, err := register[Tick](c, kindTick, name, func() *hook {
		now := time.Now()
		slot := &varSlot{name: name, value: Tick{Start: now, Time: now}, hasValue: true, updatedAt: now}
		c.s.goWatch(func(ctx context.Context) {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case at := <-t.C:
					c.s.publish(slot, Tick{Count: int64(at.Sub(now) / interval), Time: at, Start: now}, true)
				}
			}
		})
		return &hook{interval: interval, slot: slot}
	})
	if err != nil {
		return Tick{}
	}
	if h.interval != interval {
		c.fail(&HookError{Name: name, Kind: kindTick, Reason: fmt.Sprintf("interval changed from %s to %s", h.interval, interval)})
		return Tick{}
	}
	v, _ := typed[Tick](h.slot.get())
	return v
}

// goWatch starts a watch goroutine that ends with the session.
func (s *session) goWatch(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// Memo computes a value once per session and returns the cached value on
// later calls. An error from compute is returned and not cached. A panic in
// compute is returned as a *PanicError. At Config.MaxMemoEntries memos, a
// new name returns ErrMemoFull without computing. Clear with
// Watcher.ClearMemo.
func Memo[T any](c *Context, name string, compute func() (T, error)) (T, error) {
	var zero T
	if compute == nil {
		return zero, c.fail(&HookError{Name: name, Kind: kindMemo, Reason: "nil compute function"})
	}
	h, err := register[T](c, kindMemo, name, func() *hook { return &hook{} })
	if err != nil {
		return zero, err
	}
	s := c.s
	s.hooksMu.RLock()
	v, have := h.memo, h.memo != nil
	s.hooksMu.RUnlock()
	if have {
		return v.(memoBox[T]).v, nil
	}
	val, err := safeCompute(compute)
	if err != nil {
		s.hooksMu.Lock()
		if s.hooks[name] == h { // not cached: forget the entry so it counts no more
			delete(s.hooks, name)
			s.memos--
		}
		s.hooksMu.Unlock()
		return zero, err
	}
	s.hooksMu.Lock()
	h.memo = memoBox[T]{val}
	s.hooksMu.Unlock()
	return val, nil
}

// memoBox makes a cached zero value distinguishable from "not computed".
type memoBox[T any] struct{ v T }

func safeCompute[T any](compute func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: "memo", Value: r, Stack: string(debug.Stack())}
		}
	}()
	return compute()
}

func (s *session) clearMemo(name string) bool {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	h, ok := s.hooks[name]
	if !ok || h.kind != kindMemo {
		return false
	}
	delete(s.hooks, name)
	s.memos--
	return true
}

func (s *session) clearMemos() {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	for name, h := range s.hooks {
		if h.kind == kindMemo {
			delete(s.hooks, name)
		}
	}
	s.memos = 0
}

// ClearMemo forgets a memoized value from inside a run.
func (c *Context) ClearMemo(name string) bool { return c.s.clearMemo(name) }
