// Package hersh is a small framework for long-lived reactive Go programs:
// trading bots, watchers, automations.
//
// A Watcher runs one managed function. It runs once when the watcher starts,
// once for every user message (in order, never merged), and once whenever
// watched inputs change:
//
//   - WatchCall polls a function every interval;
//   - WatchFlow takes values from a channel, coalescing bursts to the latest;
//   - WatchTick ticks at an interval, with a tick count.
//
// Watches and memos are declared by calling them inside the managed function
// (like React hooks), with a name and a type parameter, so a type mismatch
// is a compile error or a *HookError, never a panic.
//
// Around that core, hersh gives a program what it needs to run unattended:
// typed context state that survives restarts (Key, with Config.StateDir),
// fault tolerance (failed runs are retried with exponential backoff and the
// watcher ends as Crashed past a limit), control errors to end on purpose
// (Stop, Kill, Crash), bounded execution logs, and the WatcherAPI, an HTTP
// API through which the Hershy Host (or you) inspects and steers the
// program.
//
// Signals are handled in strict priority order: system (stop, kill,
// recovery) before user messages before variable changes. Queues are
// bounded; Send takes a context and fails instead of blocking forever.
//
// A minimal program:
//
//	w, err := hersh.New(hersh.Config{}, func(c *hersh.Context) error {
//		tick := hersh.WatchTick(c, "tick", time.Second)
//		log.Println("tick", tick.Count)
//		return nil
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	os.Exit(hersh.ExitCode(w.Run(ctx)))
//
// Package hershtest (github.com/hershyorg/hershy/hersh/hershtest) tests
// such a program under fake time: it starts the watcher in a synctest
// bubble, sends messages, feeds watched values, advances the clock and
// checks the outcome.
package hersh
