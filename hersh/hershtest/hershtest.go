package hershtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

// Watcher is a hersh watcher started for a test, in a synctest bubble.
// Its methods act on the watcher and then wait, with [synctest.Wait], until
// everything the watcher started is blocked again, so what they return is
// the settled outcome. Call them from one goroutine at a time: synctest.Wait
// must not run concurrently within a bubble.
//
// A test fails through the testing.TB it was started with: Fatalf when an
// action cannot be carried out (the message was not queued, or has not run),
// Errorf when a check finds the wrong outcome.
type Watcher struct {
	// W is the watcher under test. Use it for what the kit does not wrap:
	// context state (key.Get(h.W)), Logs, Status, Signals, Config.
	W *hersh.Watcher

	t      testing.TB
	bubble *bubbleWatchers // the kit's watchers of this bubble, for the leak check
}

// Start creates a watcher for fn with cfg, starts it inside the current
// synctest bubble and waits until its first run (and whatever that run set
// going: first polls, flow values already waiting) has settled. It sets
// cfg.DisableAPIServer: a network listener never blocks durably, so fake
// time would stand still; read the WatcherAPI with API and GetJSON.
//
// When the test ends, the watcher is stopped if it still runs, and the test
// fails if a goroutine started while it ran outlives it. Start must be
// called inside [synctest.Test]; it fails the test at once otherwise.
func Start(t testing.TB, cfg hersh.Config, fn hersh.ManagedFunc) *Watcher {
	t.Helper()
	if err := inBubble(); err != nil {
		t.Fatalf("hershtest.Start: %v", err)
		return nil
	}
	cfg.DisableAPIServer = true
	w, err := hersh.New(cfg, fn)
	if err != nil {
		t.Fatalf("hershtest.Start: %v", err)
		return nil
	}
	return StartWatcher(t, w)
}

// StartWatcher is Start for a watcher the program under test built itself
// (with its own constructor, OnCleanup and Config): it starts w and waits
// until its first run has settled. w must have been created inside the
// current bubble (its timers and channels belong to the bubble it was made
// in) with Config.DisableAPIServer set; a watcher that would listen on the
// network fails the test. w may also be a watcher stopped earlier in the
// test, say to start it again on the same state.
func StartWatcher(t testing.TB, w *hersh.Watcher) *Watcher {
	t.Helper()
	if err := inBubble(); err != nil {
		t.Fatalf("hershtest.StartWatcher: %v", err)
		return nil
	}
	if w == nil {
		t.Fatalf("hershtest.StartWatcher: nil watcher")
		return nil
	}
	if cfg := w.Config(); !cfg.DisableAPIServer {
		t.Fatalf("hershtest.StartWatcher: the watcher would serve the WatcherAPI on %s; set Config.DisableAPIServer "+
			"(a network listener never blocks durably, so fake time would stand still) and read the API with API or GetJSON", cfg.APIAddr)
		return nil
	}
	b := joinBubble()
	if err := w.Start(); err != nil {
		b.leave()
		t.Fatalf("hershtest.StartWatcher: %v", err)
		return nil
	}
	h := &Watcher{W: w, t: t, bubble: b}
	t.Cleanup(h.cleanup)
	synctest.Wait()
	return h
}

// inBubble reports an error unless the calling goroutine is in a synctest
// bubble, waiting for the others to block as a side effect. The
// testing/synctest package has no direct question for it; Wait outside a
// bubble panics, and its words are kept in the error.
func inBubble() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("not inside a synctest bubble (synctest.Wait: %v): call it in the function given to synctest.Test, where time is fake", r)
		}
	}()
	synctest.Wait()
	return nil
}

// Send queues content as a user message and waits until it has run, then
// returns that run's result (Success, Error, StateAfter). The message runs
// after those queued before it, as in production.
//
// The clock does not move: if the message cannot run without time passing
// (the watcher is waiting out a backoff, or a run in progress waits on the
// clock or on the test) Send fails the test and says which. Use Queue and
// Advance for that.
func (h *Watcher) Send(content string) hersh.EffectResult {
	h.t.Helper()
	synctest.Wait()
	mark := h.mark()
	if err := h.W.TrySend(content); err != nil {
		h.t.Fatalf("hershtest: Send(%q): %v%s", content, err, h.endedNote())
		return hersh.EffectResult{}
	}
	synctest.Wait()
	for _, r := range h.since(mark) {
		if r.Trigger == hersh.TriggerMessage && r.Message == content {
			return r
		}
	}
	h.t.Fatalf("hershtest: Send(%q): the message was queued but has not run: %s", content, h.whyIdle())
	return hersh.EffectResult{}
}

// Queue queues content as a user message and waits until the watcher has
// settled, without requiring the message to have run: for messages sent
// while the watcher waits out a backoff, or while a run is blocked.
func (h *Watcher) Queue(content string) {
	h.t.Helper()
	if err := h.W.TrySend(content); err != nil {
		h.t.Fatalf("hershtest: Queue(%q): %v%s", content, err, h.endedNote())
		return
	}
	synctest.Wait()
}

// Advance moves the fake clock forward by d and waits until the watcher has
// settled, then returns the runs that ended meanwhile, oldest first. Ticks,
// polls, backoff timers and run timeouts due within d fire in time order,
// each run finishing before the clock moves on; those due exactly at the
// end of d have fired too. Advance(0) only settles.
func (h *Watcher) Advance(d time.Duration) []hersh.EffectResult {
	h.t.Helper()
	if d < 0 {
		h.t.Fatalf("hershtest: Advance(%s): the clock cannot go back", d)
		return nil
	}
	synctest.Wait()
	mark := h.mark()
	time.Sleep(d)
	synctest.Wait()
	return h.since(mark)
}

// Runs returns every run the execution log still holds, oldest first. The
// log is a ring of Config.MaxLogEntries entries, so after more runs than
// that only the newest are there.
func (h *Watcher) Runs() []hersh.EffectResult {
	l, _ := h.W.Logs("effect_result", 0)
	return l.EffectResults
}

// Triggers describes each run by what caused it, in the form of
// hersh.Trigger's String: "start", "message:buy", "vars:price,tick",
// "recovery". It makes a test's expectation one slices.Equal.
func Triggers(runs []hersh.EffectResult) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = trigger(r)
	}
	return out
}

func trigger(r hersh.EffectResult) string {
	switch r.Trigger {
	case hersh.TriggerMessage:
		return "message:" + r.Message
	case hersh.TriggerVars:
		return "vars:" + strings.Join(r.Vars, ",")
	}
	return r.Trigger.String()
}

// WantState fails the test unless, once settled, the watcher is in state
// want. The failure shows the state, how the session ended, and the last
// runs with their triggers and errors.
func (h *Watcher) WantState(want hersh.State) {
	h.t.Helper()
	synctest.Wait()
	if got := h.W.State(); got != want {
		h.t.Errorf("hershtest: watcher is %s, want %s%s\n%s", got, want, h.endedNote(), h.recentRuns())
	}
}

// Stop stops the watcher as a deployment does (hersh.Watcher.Stop), waits
// until its session has ended and fails the test unless it ended as
// Stopped. Cleanup has run when Stop returns. A run in progress may finish
// first, on the fake clock: Stop gives it Config.RunTimeout plus
// Config.CleanupTimeout, then fails the test showing where it is blocked.
func (h *Watcher) Stop() {
	h.t.Helper()
	h.end("Stop", h.W.Stop, hersh.StateStopped)
}

// Kill kills the watcher (hersh.Watcher.Kill: the run in progress is
// cancelled, queued messages are dropped, cleanup runs), waits until it has
// ended and fails the test unless it ended as Killed.
func (h *Watcher) Kill() {
	h.t.Helper()
	h.end("Kill", h.W.Kill, hersh.StateKilled)
}

func (h *Watcher) end(verb string, fn func(context.Context) error, want hersh.State) {
	h.t.Helper()
	synctest.Wait()
	if before := h.W.State(); before.Terminal() {
		if before != want {
			h.t.Errorf("hershtest: %s: the watcher had already ended as %s%s\n%s", verb, before, h.endedNote(), h.recentRuns())
		}
		return
	}
	if err := h.halt(fn); err != nil {
		h.t.Fatalf("hershtest: %s: %v", verb, err)
		return
	}
	if got := h.W.State(); got != want {
		h.t.Errorf("hershtest: %s: the watcher ended as %s, want %s%s\n%s", verb, got, want, h.endedNote(), h.recentRuns())
	}
}

// halt ends the session with fn, bounded like hersh.Watcher.Run bounds its
// own stop, and settles. A run that ignores its context past that bound is
// reported with the stack it is blocked at.
func (h *Watcher) halt(fn func(context.Context) error) error {
	cfg := h.W.Config()
	limit := cfg.RunTimeout + cfg.CleanupTimeout
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	err := fn(ctx)
	cancel()
	synctest.Wait()
	if err != nil {
		return fmt.Errorf("%v (waited %s of fake time, Config.RunTimeout plus Config.CleanupTimeout)\n%s", err, limit, blockedRun())
	}
	return nil
}

// Restart stops the watcher (failing the test unless it ends as Stopped),
// starts it again and waits until the new session's first run has settled.
// It is the same watcher: context state and logs are kept, memos and
// watches start afresh. To test durable state as a new process sees it,
// stop this watcher and start a new one on the same Config.StateDir.
func (h *Watcher) Restart() {
	h.t.Helper()
	h.Stop()
	if h.W.State() != hersh.StateStopped {
		return // Stop has reported it
	}
	if err := h.W.Start(); err != nil {
		h.t.Fatalf("hershtest: Restart: %v", err)
		return
	}
	synctest.Wait()
}

// cleanup ends a watcher the test left running; then, if it was the last
// of the kit's watchers in the bubble to end, it fails the test if a
// goroutine started while they ran is still alive.
func (h *Watcher) cleanup() {
	h.t.Helper()
	synctest.Wait()
	if !h.W.State().Terminal() && h.W.State() != hersh.StateNotRun {
		if err := h.halt(h.W.Stop); err != nil {
			h.bubble.leave()
			h.t.Errorf("hershtest: stopping the watcher at the end of the test: %v", err)
			return
		}
	}
	if !h.bubble.leave() {
		return // another watcher of the kit still runs: the last one checks
	}
	if leaked := h.bubble.leaked(); len(leaked) > 0 {
		h.t.Errorf("hershtest: %d goroutine(s) started while the watcher ran are still running after it ended "+
			"(a watch function or a goroutine of the managed function that ignores its context or the watcher's Done):\n\n%s",
			len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// mark returns the id of the newest run result, so that since can return
// the runs that end after it.
func (h *Watcher) mark() uint64 {
	l, _ := h.W.Logs("effect_result", 1)
	if n := len(l.EffectResults); n > 0 {
		return l.EffectResults[n-1].ID
	}
	return 0
}

// since returns the run results newer than mark, oldest first, reading only
// as much of the log as it needs.
func (h *Watcher) since(mark uint64) []hersh.EffectResult {
	for n := 16; ; n *= 4 {
		l, _ := h.W.Logs("effect_result", n)
		rs := l.EffectResults
		if len(rs) < n || rs[0].ID <= mark {
			i := len(rs)
			for i > 0 && rs[i-1].ID > mark {
				i--
			}
			return rs[i:]
		}
	}
}

// whyIdle explains, once the bubble has settled, why a queued message has
// not run.
func (h *Watcher) whyIdle() string {
	switch st := h.W.State(); {
	case st.Terminal():
		return fmt.Sprintf("the watcher ended as %s before it could run%s", st, h.endedNote())
	case st == hersh.StateWaitRecover:
		detail := "a run failed"
		if l, _ := h.W.Logs("effect", 8); len(l.EffectLogs) > 0 {
			for i := len(l.EffectLogs) - 1; i >= 0; i-- {
				if e := l.EffectLogs[i]; e.Effect == "schedule-recovery" {
					detail = e.Detail
					break
				}
			}
		}
		return "the watcher is waiting out a backoff (" + detail + "); messages wait for the recovery run: " +
			"Queue the message and Advance the clock past the backoff"
	case st == hersh.StateRunning || st == hersh.StateInitRun:
		return "a run is in progress and blocked, on the fake clock (Advance it) or on a channel the test must serve\n" + blockedRun()
	}
	return fmt.Sprintf("the watcher is %s with the message still queued (%d pending)", h.W.State(), h.W.Signals().UserSigCount)
}

// endedNote says how the session ended, if it has.
func (h *Watcher) endedNote() string {
	if !h.W.State().Terminal() {
		return ""
	}
	if err := h.W.Err(); err != nil {
		return " (ended with: " + err.Error() + ")"
	}
	return ""
}

// recentRuns lists the last few runs for a failure message.
func (h *Watcher) recentRuns() string {
	const show = 5
	l, _ := h.W.Logs("effect_result", show)
	if len(l.EffectResults) == 0 {
		return "  no runs recorded"
	}
	var b strings.Builder
	b.WriteString("  last runs, oldest first:")
	for _, r := range l.EffectResults {
		outcome := "ok"
		if !r.Success {
			outcome = "error: " + r.Error
		}
		fmt.Fprintf(&b, "\n    run %d (%s): %s, then %s", r.RunID, trigger(r), outcome, r.StateAfter)
	}
	return b.String()
}
