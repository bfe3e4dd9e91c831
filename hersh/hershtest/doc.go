// Package hershtest is a test kit for programs written with hersh, as
// net/http/httptest is for HTTP handlers: it runs the program's watcher in
// a test, under fake time, and lets the test drive it and look inside.
//
// Everything happens inside a [testing/synctest] bubble. Time there is
// fake: ticks, polls, backoffs and run timeouts fire exactly when they are
// due and take no real time, and the kit knows when the watcher has done
// all it can (every goroutine it started is blocked), so a test never
// sleeps and never guesses.
//
//	func TestBot(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			h := hershtest.Start(t, hersh.Config{StateDir: t.TempDir()}, bot)
//			h.Send("buy 2")          // returns once the message has run
//			h.Advance(time.Hour)     // an hour of ticks and polls, in microseconds
//			if n, _ := position.Get(h.W); n != 2 { // context state
//				t.Errorf("position %d, want 2", n)
//			}
//			h.Stop() // fails the test unless the watcher stops cleanly
//		})
//	}
//
// # Driving the watcher
//
// [Start] creates and starts a watcher for a managed function;
// [StartWatcher] starts one the program built itself. Both return once the
// first run has settled, and stop the watcher when the test ends.
//
//   - [Watcher.Send] sends a message and returns its run's result;
//     [Watcher.Queue] only queues (for a watcher waiting out a backoff).
//   - [Watcher.Advance] moves the clock: ticks (WatchTick), polls
//     (WatchCall) and backoffs fire in order, and it returns the runs.
//   - [Feed] sends a value on a channel a WatchFlow reads; a [Value] is
//     what a WatchCall polls, set by the test.
//
// The clock moves only in Advance (and while Stop waits for a run that is
// itself waiting on the clock), so every passage of time is in the test's
// text. Send does not move it: a message that cannot run yet fails the
// test with the reason.
//
// # Looking inside
//
// Context state is read with the program's own keys through [Watcher.W]
// (key.Get(h.W)); [Var] and [Memo] read watched variables and memos, typed;
// [Watcher.Runs] is the run log and [Triggers] says what caused each run;
// [Watcher.API] and [Watcher.GetJSON] ask the WatcherAPI through
// hersh.Watcher.Handler, as the Host's proxy would. [CaptureLog] collects
// what the program logs.
//
// # Checking the outcome
//
// [Watcher.WantState] checks the state (Ready, WaitRecover, Stopped,
// Crashed, Killed); [Watcher.Stop] and [Watcher.Kill] end the watcher and
// check it ended that way; h.W.Err() is how it ended. When the test ends,
// the kit stops a watcher still running and fails the test if a goroutine
// started while it ran (a watch, or one the managed function started) is
// still alive: a program that leaks goroutines leaks them in production.
//
// A failure message starts with "hershtest:" and says what happened: the
// state, how the session ended, the last runs with their errors, the
// backoff being waited out, or the stack a run is blocked at.
//
// # Patterns
//
// The tests in this package's example_*_test.go files are its examples:
// TestMessageHandler (messages, context state, the WatcherAPI),
// TestTickingStrategy (WatchTick, WatchCall with a Value, WatchFlow with
// Feed), TestCrashAndBackoff (failed runs, recovery, a crash on purpose)
// and TestDurableStateAcrossRestart (Config.StateDir in t.TempDir(), a new
// watcher reading it back). They are tests rather than Example functions
// because a bubble needs the *testing.T of a test.
//
// # Rules
//
//   - Create what the watcher blocks on (channels, and the watcher itself
//     when you build it) inside the bubble: a goroutine blocked on
//     something from outside never counts as blocked, and the kit would
//     wait for ever.
//   - The watcher must not listen on the network (Start sets
//     Config.DisableAPIServer; StartWatcher requires it), for the same
//     reason.
//   - Call a Watcher's methods from one goroutine at a time.
package hershtest
