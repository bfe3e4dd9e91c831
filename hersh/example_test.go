package hersh_test

// Runnable examples. Each one sequences its runs with channels, so its
// output does not depend on timing. They turn the network server off
// (DisableAPIServer); ExampleWatcher_Handler shows the WatcherAPI without it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

// A watcher's life: New validates the config, Start begins a session and
// runs the managed function once, Stop ends it and runs cleanup.
func ExampleNew() {
	_, err := hersh.New(hersh.Config{RunTimeout: -time.Second}, func(c *hersh.Context) error { return nil })
	fmt.Println(err)

	ran := make(chan struct{})
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		fmt.Println("run:", c.Trigger())
		close(ran)
		return nil
	})
	if err != nil {
		panic(err)
	}
	w.OnCleanup(func(c *hersh.Context, cause error) { fmt.Println("cleanup, cause:", cause) })

	if err := w.Start(); err != nil {
		panic(err)
	}
	<-ran
	if err := w.Stop(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("state:", w.State(), "err:", w.Err())
	// Output:
	// hersh: config: RunTimeout must be positive, got -1s
	// run: start
	// cleanup, cause: <nil>
	// state: Stopped err: <nil>
}

// WatchCall polls a function and re-runs the managed function when it
// reports a change. Here the poll reads a sensor the example sets.
func ExampleWatchCall() {
	var sensor atomic.Int64
	seen := make(chan int64)
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		v, ok := hersh.WatchCall(c, "sensor", time.Millisecond,
			func(ctx context.Context, prev int64) (int64, bool, error) {
				cur := sensor.Load()
				return cur, cur != prev, nil
			})
		if ok {
			seen <- v
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	defer w.Stop(context.Background())

	for _, v := range []int64{20, 25} {
		sensor.Store(v)
		fmt.Println("run saw", <-seen)
	}
	// Output:
	// run saw 20
	// run saw 25
}

// WatchFlow re-runs the managed function for values from a channel. Values
// that arrive while a run executes coalesce: a burst may take fewer runs
// than values, but the latest value is always seen.
func ExampleWatchFlow() {
	prices := make(chan float64)
	latest := make(chan float64, 16)
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		if p, ok := hersh.WatchFlow(c, "price", prices); ok {
			latest <- p
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	defer w.Stop(context.Background())

	for _, p := range []float64{100, 101, 99.5, 102} {
		prices <- p
	}
	for p := range latest {
		if p == 102 {
			fmt.Println("latest price:", p)
			break
		}
	}
	// Output:
	// latest price: 102
}

// A value marked SkipSignal is stored without causing a run; the next run,
// whatever triggers it, sees it.
func ExampleWatchFlowValues() {
	limits := make(chan hersh.FlowValue[int])
	runs := make(chan struct{})
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		limit, _ := hersh.WatchFlowValues(c, "limit", limits)
		fmt.Printf("%s: limit %d\n", c.Trigger(), limit)
		runs <- struct{}{}
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	defer w.Stop(context.Background())
	<-runs

	limits <- hersh.FlowValue[int]{Value: 10}
	<-runs
	limits <- hersh.FlowValue[int]{Value: 20, SkipSignal: true} // stored, no run
	for w.VarState()["limit"] != 20 {
		time.Sleep(time.Millisecond)
	}
	if err := w.Send(context.Background(), "show"); err != nil {
		panic(err)
	}
	<-runs
	// Output:
	// start: limit 0
	// vars:limit: limit 10
	// message:show: limit 20
}

// WatchTick re-runs the managed function at an interval. Count is the number
// of whole intervals since the watch was registered; if runs fall behind,
// ticks coalesce and Count jumps, so no interval is counted twice.
func ExampleWatchTick() {
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		tick := hersh.WatchTick(c, "tick", time.Millisecond)
		if c.Trigger().Kind == hersh.TriggerStart {
			fmt.Println("registered, count", tick.Count)
		}
		if tick.Count >= 3 {
			return hersh.Stop("three ticks")
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	err = w.Run(context.Background()) // returns when the managed function stops
	fmt.Println("Run returned:", err, "state:", w.State())
	// Output:
	// registered, count 0
	// Run returned: <nil> state: Stopped
}

// Memo computes a value once per session; runs after the first get the
// cached value until it is cleared.
func ExampleMemo() {
	runs := make(chan struct{})
	loads := 0
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		if m := c.Message(); m != nil && m.Content == "reload" {
			c.ClearMemo("settings")
		}
		settings, err := hersh.Memo(c, "settings", func() (string, error) {
			loads++
			return fmt.Sprintf("settings v%d", loads), nil
		})
		fmt.Printf("%s: %s\n", c.Trigger(), settings)
		runs <- struct{}{}
		return err
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	defer w.Stop(context.Background())
	<-runs
	for _, msg := range []string{"hello", "reload", "hello"} {
		if err := w.Send(context.Background(), msg); err != nil {
			panic(err)
		}
		<-runs
	}
	// Output:
	// start: settings v1
	// message:hello: settings v1
	// message:reload: settings v2
	// message:hello: settings v2
}

// Context state: typed keys that outlive runs. Update applies a function
// atomically; Config.Env holds immutable values.
func ExampleKey() {
	visits := hersh.NewKey[int]("visits")
	runs := make(chan struct{})
	cfg := hersh.Config{DisableAPIServer: true, Env: map[string]string{"GREETING": "hello"}}
	w, err := hersh.New(cfg, func(c *hersh.Context) error {
		defer func() { runs <- struct{}{} }()
		if _, set := visits.Get(c); !set {
			greeting, _ := c.Env("GREETING")
			fmt.Println(greeting, "- no visits yet")
			return visits.Set(c, 0)
		}
		n, err := visits.Update(c, func(n int) (int, error) { return n + 1, nil })
		fmt.Println("visits:", n)
		return err
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	defer w.Stop(context.Background())
	<-runs
	for range 2 {
		if err := w.Send(context.Background(), "visit"); err != nil {
			panic(err)
		}
		<-runs
	}
	// Output:
	// hello - no visits yet
	// visits: 1
	// visits: 2
}

// With a state directory, context state is saved there and restored by the
// next watcher: a restarted program resumes where it was.
func Example_durableState() {
	dir, err := os.MkdirTemp("", "hersh-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	count := hersh.NewKey[int]("count")
	for range 2 { // two program lives on the same directory
		ran := make(chan struct{})
		w, err := hersh.New(hersh.Config{DisableAPIServer: true, StateDir: dir}, func(c *hersh.Context) error {
			defer close(ran)
			n, err := count.Update(c, func(n int) (int, error) { return n + 1, nil })
			fmt.Println("count:", n)
			return err
		})
		if err != nil {
			panic(err)
		}
		if err := w.Start(); err != nil {
			panic(err)
		}
		<-ran
		if err := w.Stop(context.Background()); err != nil { // saves the state
			panic(err)
		}
	}
	// Output:
	// count: 1
	// count: 2
}

// A run can ask what triggered it: the start, a recovery after a failed
// run, a user message, or changed watched variables.
func ExampleContext_Trigger() {
	events := make(chan string)
	runs := make(chan struct{})
	cfg := hersh.Config{
		DisableAPIServer: true,
		Recovery:         hersh.RecoveryConfig{Base: time.Millisecond, Max: time.Millisecond},
	}
	failed := false
	w, err := hersh.New(cfg, func(c *hersh.Context) error {
		hersh.WatchFlow(c, "event", events)
		t := c.Trigger()
		fmt.Printf("%s (system: %v)\n", t, t.System())
		if !failed {
			failed = true
			return errors.New("flaky start") // retried after the backoff
		}
		runs <- struct{}{}
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	defer w.Stop(context.Background())
	<-runs
	if err := w.Send(context.Background(), "hello"); err != nil {
		panic(err)
	}
	<-runs
	events <- "deploy"
	<-runs
	// Output:
	// start (system: true)
	// recovery (system: true)
	// message:hello (system: false)
	// vars:event (system: false)
}

// Returning hersh.Stop from the managed function ends the watcher gracefully:
// Err reports nil and the watcher could be started again.
func ExampleStop() {
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		if m := c.Message(); m != nil && m.Content == "quit" {
			return hersh.Stop("asked to quit")
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	if err := w.Send(context.Background(), "quit"); err != nil {
		panic(err)
	}
	<-w.Done()
	fmt.Println("state:", w.State(), "err:", w.Err())
	// Output:
	// state: Stopped err: <nil>
}

// Control errors are recognised with errors.As, also when wrapped. A crash
// ends the watcher for good; cleanup still runs, with the cause.
func ExampleCrash() {
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		err := errors.New("disk full")
		return fmt.Errorf("saving report: %w", hersh.Crash("cannot continue", err))
	})
	if err != nil {
		panic(err)
	}
	w.OnCleanup(func(c *hersh.Context, cause error) { fmt.Println("cleanup:", cause) })
	if err := w.Start(); err != nil {
		panic(err)
	}
	<-w.Done()

	var crash *hersh.CrashError
	if errors.As(w.Err(), &crash) {
		fmt.Println("crashed:", crash.Reason, "-", crash.Err)
	}
	fmt.Println("state:", w.State())
	fmt.Println("start again:", w.Start())
	// Output:
	// cleanup: saving report: hersh: crash: cannot continue: disk full
	// crashed: cannot continue - disk full
	// state: Crashed
	// start again: hersh: watcher was killed or crashed and cannot be started again
}

// ExitCode turns how a watcher ended into a process exit code:
// os.Exit(hersh.ExitCode(w.Run(ctx))).
func ExampleExitCode() {
	fmt.Println(hersh.ExitCode(nil))
	fmt.Println(hersh.ExitCode(hersh.Crash("bad", nil)))
	fmt.Println(hersh.ExitCode(fmt.Errorf("wrapped: %w", hersh.Kill("enough"))))
	fmt.Println(hersh.ExitCode(errors.New("could not start")))
	// Output:
	// 0
	// 1
	// 2
	// 3
}

// The WatcherAPI is also an http.Handler, to mount in another server. Here
// it is called through an httptest.ResponseRecorder, with no network.
func ExampleWatcher_Handler() {
	got := make(chan string)
	w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
		if m := c.Message(); m != nil {
			got <- m.Content
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/watcher/", w.Handler())
	call := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec
	}

	if err := w.Start(); err != nil {
		panic(err)
	}
	rec := call("POST", "/watcher/message", `{"content":"status"}`)
	fmt.Print(rec.Code, " ", rec.Body.String())
	fmt.Println("run got:", <-got)

	rec = call("POST", "/watcher/message", `{"content":""}`)
	fmt.Print(rec.Code, " ", rec.Body.String())

	if err := w.Stop(context.Background()); err != nil {
		panic(err)
	}
	var status struct {
		State     string `json:"state"`
		IsRunning bool   `json:"isRunning"`
	}
	rec = call("GET", "/watcher/status", "")
	if err := json.NewDecoder(rec.Body).Decode(&status); err != nil {
		panic(err)
	}
	fmt.Println(rec.Code, status.State, status.IsRunning)
	// Output:
	// 200 {"status":"message sent"}
	// run got: status
	// 400 {"error":"content must not be empty"}
	// 200 Stopped false
}
