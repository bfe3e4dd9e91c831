package hersh

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh/internal/leaktest"
)

// start creates and starts a watcher with no network listener. Engine tests
// run inside synctest bubbles: time is fake, and the bubble fails the test
// if any goroutine the watcher started is still alive at the end.
func start(t *testing.T, cfg Config, fn ManagedFunc) *Watcher {
	t.Helper()
	cfg.DisableAPIServer = true
	w, err := New(cfg, fn)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.Kill(context.Background())
	})
	return w
}

func stop(t *testing.T, w *Watcher) {
	t.Helper()
	if err := w.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func send(t *testing.T, w *Watcher, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if err := w.Send(context.Background(), m); err != nil {
			t.Fatalf("Send(%q): %v", m, err)
		}
	}
}

// recorder collects what each run saw, safely across goroutines.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.seen = append(r.seen, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func TestConfigResolve(t *testing.T) {
	t.Setenv(EnvAPIAddr, "")
	t.Setenv(EnvStateDir, "")
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "zero takes every default", check: func(t *testing.T, c Config) {
			d := DefaultConfig()
			d.Env = map[string]string{}
			if !reflect.DeepEqual(c, d) {
				t.Fatalf("got %+v, want %+v", c, d)
			}
		}},
		{name: "one field set keeps the other defaults", cfg: Config{MaxMemoEntries: 7}, check: func(t *testing.T, c Config) {
			if c.MaxMemoEntries != 7 || c.SignalCapacity != DefaultSignalCapacity || c.RunTimeout != DefaultRunTimeout || c.Recovery.Base != DefaultBackoffBase {
				t.Fatalf("got %+v", c)
			}
		}},
		{name: "NoJitter gives exact delays", cfg: Config{Recovery: RecoveryConfig{Jitter: NoJitter}}, check: func(t *testing.T, c Config) {
			if c.Recovery.Jitter != 0 {
				t.Fatalf("jitter = %v", c.Recovery.Jitter)
			}
		}},
		{name: "negative capacity", cfg: Config{SignalCapacity: -1}, wantErr: "SignalCapacity must be positive"},
		{name: "negative log entries", cfg: Config{MaxLogEntries: -5}, wantErr: "MaxLogEntries"},
		{name: "negative memo entries", cfg: Config{MaxMemoEntries: -5}, wantErr: "MaxMemoEntries"},
		{name: "negative run timeout", cfg: Config{RunTimeout: -time.Second}, wantErr: "RunTimeout"},
		{name: "negative cleanup timeout", cfg: Config{CleanupTimeout: -time.Second}, wantErr: "CleanupTimeout"},
		{name: "negative max failures", cfg: Config{Recovery: RecoveryConfig{MaxFailures: -1}}, wantErr: "MaxFailures"},
		{name: "max below base", cfg: Config{Recovery: RecoveryConfig{Base: time.Minute, Max: time.Second}}, wantErr: "below Recovery.Base"},
		{name: "jitter out of range", cfg: Config{Recovery: RecoveryConfig{Jitter: 1.5}}, wantErr: "Jitter"},
		{name: "bad address", cfg: Config{APIAddr: "localhost"}, wantErr: "APIAddr"},
		{name: "bad port", cfg: Config{APIAddr: ":99999"}, wantErr: "port"},
		{name: "empty env key", cfg: Config{Env: map[string]string{"": "x"}}, wantErr: "empty key"},
		{name: "several errors reported together", cfg: Config{SignalCapacity: -1, MaxLogEntries: -1}, wantErr: "MaxLogEntries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.resolve()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv(EnvAPIAddr, "127.0.0.1:9999")
	dir := t.TempDir()
	t.Setenv(EnvStateDir, dir)
	c, err := Config{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.APIAddr != "127.0.0.1:9999" || c.StateDir != dir || c.port() != 9999 {
		t.Fatalf("got addr %q dir %q", c.APIAddr, c.StateDir)
	}
	c, _ = Config{APIAddr: ":7000"}.resolve()
	if c.APIAddr != ":7000" {
		t.Fatalf("explicit address overridden by environment: %q", c.APIAddr)
	}
}

func TestConfigEnvIsImmutable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := map[string]string{"MODE": "paper"}
		seen := make(chan string, 1)
		w := start(t, Config{Env: env}, func(c *Context) error {
			v, _ := c.Env("MODE")
			seen <- v
			return nil
		})
		env["MODE"] = "live"
		if got := <-seen; got != "paper" {
			t.Fatalf("Env(MODE) = %q, want paper", got)
		}
		w.Config().Env["MODE"] = "live"
		if w.cfg.Env["MODE"] != "paper" {
			t.Fatal("Config() exposes the watcher's own map")
		}
		stop(t, w)
	})
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}, nil); !errors.Is(err, ErrNoManaged) {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(Config{SignalCapacity: -1}, func(*Context) error { return nil }); err == nil {
		t.Fatal("invalid config accepted")
	}
}

func TestInitialRunThenMessagesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			if m := c.Message(); m != nil {
				rec.add(c.Trigger().Kind.String() + ":" + m.Content)
			} else {
				rec.add(c.Trigger().Kind.String())
			}
			return nil
		})
		var want []string
		want = append(want, "start")
		for i := range 200 {
			send(t, w, fmt.Sprint(i))
			want = append(want, fmt.Sprintf("message:%d", i))
		}
		synctest.Wait()
		stop(t, w)
		if got := rec.get(); !reflect.DeepEqual(got, want) {
			t.Fatalf("runs = %v\nwant %v", got, want)
		}
	})
}

func TestMessagesAreNeverMerged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			if c.Trigger().Kind == TriggerStart {
				<-release
				return nil
			}
			rec.add(c.Message().Content)
			return nil
		})
		send(t, w, "a", "b", "c", "d")
		if got := w.Signals().UserSigCount; got != 4 {
			t.Fatalf("pending user signals = %d, want 4", got)
		}
		close(release)
		synctest.Wait()
		stop(t, w)
		if got := rec.get(); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
			t.Fatalf("runs = %v", got)
		}
	})
}

func TestWatchCallAppliesEveryUpdateWhenRunsAreSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const polls = 40
		var rec recorder
		runs := 0
		w := start(t, Config{}, func(c *Context) error {
			n, ok := WatchCall(c, "n", 10*time.Millisecond, func(ctx context.Context, prev int) (int, bool, error) {
				if prev >= polls {
					return prev, false, nil
				}
				return prev + 1, true, nil // depends on the previous value
			})
			runs++
			if ok {
				rec.add(fmt.Sprint(n))
			}
			time.Sleep(35 * time.Millisecond) // a slow run
			return nil
		})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		stop(t, w)
		seen := rec.get()
		if len(seen) == 0 || seen[len(seen)-1] != fmt.Sprint(polls) {
			t.Fatalf("last value seen = %v, want %d (an update was lost)", seen, polls)
		}
		prev := 0
		for _, s := range seen {
			var v int
			fmt.Sscan(s, &v)
			if v <= prev {
				t.Fatalf("values out of order: %v", seen)
			}
			prev = v
		}
		if runs >= polls {
			t.Fatalf("%d runs for %d slow updates: expected coalescing", runs, polls)
		}
	})
}

func TestWatchCallPollErrorsAndPanicsAreLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		seen := make(chan int, 10)
		w := start(t, Config{}, func(c *Context) error {
			if v, ok := WatchCall(c, "flaky", time.Second, func(ctx context.Context, prev int) (int, bool, error) {
				switch calls.Add(1) {
				case 1:
					return 0, false, errors.New("exchange unreachable")
				case 2:
					panic("bad payload")
				}
				return prev + 1, true, nil
			}); ok {
				seen <- v
			}
			return nil
		})
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		if v := <-seen; v != 1 {
			t.Fatalf("value after recovery = %d", v)
		}
		logs, _ := w.Logs("watch_error", 0)
		if len(logs.WatchErrorLogs) != 2 {
			t.Fatalf("watch errors = %+v", logs.WatchErrorLogs)
		}
		if e := logs.WatchErrorLogs[0]; e.Var != "flaky" || e.Phase != "poll" || !strings.Contains(e.Error, "unreachable") {
			t.Fatalf("first = %+v", e)
		}
		// The stack shows the poll function that panicked.
		if e := logs.WatchErrorLogs[1]; !strings.Contains(e.Error, "bad payload") || !strings.Contains(e.Stack, "TestWatchCallPollErrorsAndPanicsAreLogged") {
			t.Fatalf("panic entry = %+v", e)
		}
		if w.State() != StateReady {
			t.Fatalf("state = %s", w.State())
		}
		stop(t, w)
	})
}

func TestWatchFlowCoalescesToLatest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int)
		release := make(chan struct{})
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			v, ok := WatchFlow(c, "price", ch)
			if c.Trigger().Kind == TriggerStart {
				<-release
				return nil
			}
			rec.add(fmt.Sprintf("%s=%d/%v", c.Trigger(), v, ok))
			return nil
		})
		for i := 1; i <= 100; i++ {
			ch <- i
		}
		synctest.Wait() // the watch goroutine has published the last value
		close(release)
		synctest.Wait()
		if got := rec.get(); !reflect.DeepEqual(got, []string{"vars:price=100/true"}) {
			t.Fatalf("runs = %v", got)
		}
		ch <- 101
		synctest.Wait()
		if got := rec.get(); len(got) != 2 || got[1] != "vars:price=101/true" {
			t.Fatalf("runs = %v", got)
		}
		stop(t, w)
	})
}

func TestWatchFlowSkipSignalStoresWithoutRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan FlowValue[string])
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			v, ok := WatchFlowValues(c, "cfg", ch)
			rec.add(fmt.Sprintf("%s:%q/%v", c.Trigger().Kind, v, ok))
			return nil
		})
		synctest.Wait()
		ch <- FlowValue[string]{Value: "quiet", SkipSignal: true}
		synctest.Wait()
		if got := rec.get(); len(got) != 1 {
			t.Fatalf("a skip-signal value caused a run: %v", got)
		}
		if got := w.VarState()["cfg"]; got != "quiet" {
			t.Fatalf("stored value = %v, want quiet (skip-signal must store, not drop)", got)
		}
		send(t, w, "look")
		synctest.Wait()
		ch <- FlowValue[string]{Value: "loud"}
		synctest.Wait()
		want := []string{`start:""/false`, `message:"quiet"/true`, `vars:"loud"/true`}
		if got := rec.get(); !reflect.DeepEqual(got, want) {
			t.Fatalf("runs = %v, want %v", got, want)
		}
		stop(t, w)
	})
}

func TestWatchFlowClosedChannelKeepsLastValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int, 1)
		w := start(t, Config{}, func(c *Context) error {
			WatchFlow(c, "v", ch)
			return nil
		})
		ch <- 7
		close(ch)
		synctest.Wait()
		if got := w.VarState()["v"]; got != 7 {
			t.Fatalf("value = %v", got)
		}
		stop(t, w)
	})
}

func TestWatchTickCountsWholeIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		slow := atomic.Bool{}
		t0 := time.Now()
		var late []string
		w := start(t, Config{}, func(c *Context) error {
			tk := WatchTick(c, "tick", time.Second)
			rec.add(fmt.Sprint(tk.Count))
			// The count follows the clock: at most one tick behind (a tick
			// due at this very instant may not have been delivered yet).
			if el := int64(time.Since(t0) / time.Second); tk.Count > el || tk.Count < el-1 {
				late = append(late, fmt.Sprintf("count %d at %s", tk.Count, time.Since(t0)))
			}
			if slow.Load() {
				time.Sleep(2500 * time.Millisecond)
			}
			return nil
		})
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if got := rec.get(); !reflect.DeepEqual(got, []string{"0", "1", "2", "3"}) {
			t.Fatalf("counts = %v", got)
		}
		// Slow runs: ticks coalesce and the count jumps; none is counted twice.
		slow.Store(true)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		stop(t, w)
		got := rec.get()
		prev := -1
		for _, s := range got {
			var n int
			fmt.Sscan(s, &n)
			if n <= prev {
				t.Fatalf("counts not increasing: %v", got)
			}
			prev = n
		}
		if len(late) > 0 || len(got) > 10 {
			t.Fatalf("counts = %v, off the clock: %v; want fewer runs than ticks", got, late)
		}
	})
}

func TestTriggers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := make(chan int, 1), make(chan int, 1)
		release := make(chan struct{})
		fail := atomic.Bool{}
		var rec recorder
		w := start(t, Config{Recovery: RecoveryConfig{Jitter: NoJitter}}, func(c *Context) error {
			WatchFlow(c, "a", a)
			WatchFlow(c, "b", b)
			tr := c.Trigger()
			rec.add(fmt.Sprintf("%s system=%v vars=%v a=%v", tr.Kind, tr.System(), tr.Vars, c.Changed("a")))
			if tr.Kind == TriggerStart {
				<-release
			}
			if fail.Swap(false) {
				return errors.New("boom")
			}
			return nil
		})
		a <- 1
		b <- 2
		synctest.Wait()
		close(release)
		synctest.Wait()
		fail.Store(true)
		send(t, w, "m")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		stop(t, w)
		want := []string{
			"start system=true vars=[] a=false",
			"vars system=false vars=[a b] a=true",
			"message system=false vars=[] a=false",
			"recovery system=true vars=[] a=false",
		}
		if got := rec.get(); !reflect.DeepEqual(got, want) {
			t.Fatalf("triggers = %q\nwant %q", got, want)
		}
	})
}

func TestPriorityUserBeforeVars(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int, 1)
		release := make(chan struct{})
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			WatchFlow(c, "v", ch)
			if c.Trigger().Kind == TriggerStart {
				<-release
			}
			rec.add(c.Trigger().Kind.String())
			return nil
		})
		ch <- 1 // the variable changes first ...
		synctest.Wait()
		send(t, w, "x", "y") // ... then messages arrive
		close(release)
		synctest.Wait()
		stop(t, w)
		if got := rec.get(); !reflect.DeepEqual(got, []string{"start", "message", "message", "vars"}) {
			t.Fatalf("order = %v", got)
		}
	})
}

func TestPrioritySystemBeforeUser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			rec.add(c.Trigger().Kind.String())
			if c.Trigger().Kind == TriggerStart {
				<-release
			}
			return nil
		})
		send(t, w, "1", "2", "3")
		done := make(chan error)
		go func() { done <- w.Stop(context.Background()) }()
		synctest.Wait()
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := rec.get(); !reflect.DeepEqual(got, []string{"start"}) {
			t.Fatalf("runs after stop request = %v, want only the in-flight one", got)
		}
		logs, _ := w.Logs("effect", 0)
		last := logs.EffectLogs[len(logs.EffectLogs)-1]
		if last.Effect != "discard" || last.Detail != "3 queued messages" {
			t.Fatalf("discarded messages not logged: %+v", logs.EffectLogs)
		}
	})
}

func TestSendBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		w := start(t, Config{SignalCapacity: 2}, func(c *Context) error {
			if c.Trigger().Kind == TriggerStart {
				<-release
			}
			return nil
		})
		if err := w.TrySend("1"); err != nil {
			t.Fatal(err)
		}
		if err := w.TrySend("2"); err != nil {
			t.Fatal(err)
		}
		if err := w.TrySend("3"); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("TrySend on a full queue = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		t0 := time.Now()
		err := w.Send(ctx, "3")
		if !errors.Is(err, ErrQueueFull) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send on a full queue = %v", err)
		}
		if waited := time.Since(t0); waited != time.Second {
			t.Fatalf("Send waited %s, want the caller's 1s deadline", waited)
		}
		// A Send that waits gets in once there is room.
		go func() { time.Sleep(time.Second); close(release) }()
		if err := w.Send(context.Background(), "3"); err != nil {
			t.Fatal(err)
		}
		stop(t, w)
		if err := w.Send(context.Background(), "late"); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("Send after stop = %v", err)
		}
	})
}

func TestSendBeforeStart(t *testing.T) {
	w, err := New(Config{DisableAPIServer: true}, func(*Context) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.TrySend("x"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("err = %v", err)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start = %v", err)
	}
	if w.Done() != nil || w.Err() != nil || w.State() != StateNotRun {
		t.Fatal("unexpected state before start")
	}
}

func TestStopIsIdempotentAndConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cleanups atomic.Int32
		w := start(t, Config{}, func(c *Context) error {
			WatchTick(c, "t", time.Millisecond)
			return nil
		})
		w.OnCleanup(func(*Context, error) { cleanups.Add(1) }) // takes effect next start
		stop(t, w)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 64 {
			wg.Go(func() { errs <- w.Stop(context.Background()) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		stop(t, w)
		if n := cleanups.Load(); n != 1 {
			t.Fatalf("cleanup ran %d times", n)
		}
		if w.State() != StateStopped || w.Err() != nil {
			t.Fatalf("state %s err %v", w.State(), w.Err())
		}
	})
}

func TestStopHonoursCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var ctxErr atomic.Value
		w := start(t, Config{}, func(c *Context) error {
			<-c.Done() // the run ends only when its context is cancelled ...
			ctxErr.Store(c.Err())
			<-release // ... and then takes its time
			return nil
		})
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		t0 := time.Now()
		err := w.Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) != 3*time.Second {
			t.Fatalf("Stop = %v after %s", err, time.Since(t0))
		}
		synctest.Wait()
		if got := ctxErr.Load(); got != context.Canceled {
			t.Fatalf("run context after Stop's deadline: %v, want cancelled", got)
		}
		close(release)
		<-w.Done()
		if w.State() != StateStopped || w.Err() != nil {
			t.Fatalf("state %s err %v", w.State(), w.Err())
		}
	})
}

func TestKillCancelsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cause atomic.Value
		w := start(t, Config{}, func(c *Context) error {
			WatchTick(c, "t", time.Hour)
			<-c.Done()
			return c.Err()
		})
		w.OnCleanup(nil)
		synctest.Wait()
		if err := w.Kill(context.Background()); err != nil {
			t.Fatal(err)
		}
		var ke *KillError
		if !errors.As(w.Err(), &ke) || w.State() != StateKilled {
			t.Fatalf("err %v state %s", w.Err(), w.State())
		}
		if err := w.Start(); !errors.Is(err, ErrTerminated) {
			t.Fatalf("Start after kill = %v", err)
		}
		_ = cause
	})
}

func TestControlErrors(t *testing.T) {
	tests := []struct {
		name  string
		ret   error
		state State
		check func(error) bool
		code  int
	}{
		{"stop", Stop("done"), StateStopped, func(err error) bool { return err == nil }, 0},
		{"wrapped stop", fmt.Errorf("strategy: %w", Stop("done")), StateStopped, func(err error) bool { return err == nil }, 0},
		{"kill", Kill("bad key"), StateKilled, func(err error) bool { var e *KillError; return errors.As(err, &e) }, 2},
		{"wrapped kill keeps its context", fmt.Errorf("x: %w", Kill("bad key")), StateKilled, func(err error) bool {
			var e *KillError
			return errors.As(err, &e) && strings.HasPrefix(err.Error(), "x: ")
		}, 2},
		{"crash", Crash("ledger corrupt", errors.New("checksum")), StateCrashed, func(err error) bool {
			var e *CrashError
			return errors.As(err, &e) && e.Reason == "ledger corrupt" && strings.Contains(err.Error(), "checksum")
		}, 1},
		{"joined crash", errors.Join(errors.New("a"), Crash("b", nil)), StateCrashed, func(err error) bool { var e *CrashError; return errors.As(err, &e) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var causes []error
				w, err := New(Config{DisableAPIServer: true}, func(c *Context) error {
					if c.Message() != nil {
						return tt.ret
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				w.OnCleanup(func(c *Context, cause error) { causes = append(causes, cause) })
				if err := w.Start(); err != nil {
					t.Fatal(err)
				}
				send(t, w, "go")
				<-w.Done()
				if w.State() != tt.state || !tt.check(w.Err()) {
					t.Fatalf("state %s err %v", w.State(), w.Err())
				}
				if len(causes) != 1 || !tt.check(causes[0]) {
					t.Fatalf("cleanup causes = %v", causes)
				}
				if got := ExitCode(w.Err()); got != tt.code {
					t.Fatalf("ExitCode = %d, want %d", got, tt.code)
				}
				startErr := w.Start()
				if tt.state.Final() != errors.Is(startErr, ErrTerminated) {
					t.Fatalf("Start after %s = %v", tt.state, startErr)
				}
				_ = w.Stop(context.Background())
			})
		})
	}
}

func TestRestartAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var computed atomic.Int32
		count := NewKey[int]("count")
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			v, err := Memo(c, "conn", func() (string, error) { computed.Add(1); return "conn", nil })
			if err != nil || v != "conn" {
				return fmt.Errorf("memo: %q %v", v, err)
			}
			n, err := count.Update(c, func(n int) (int, error) { return n + 1, nil })
			rec.add(fmt.Sprintf("%s:%d", c.Trigger().Kind, n))
			return err
		})
		send(t, w, "a")
		synctest.Wait()
		stop(t, w)
		if err := w.Start(); err != nil {
			t.Fatalf("restart after stop: %v", err)
		}
		if err := w.Start(); !errors.Is(err, ErrAlreadyRunning) {
			t.Fatalf("second Start = %v", err)
		}
		send(t, w, "b")
		synctest.Wait()
		stop(t, w)
		if got := rec.get(); !reflect.DeepEqual(got, []string{"start:1", "message:2", "start:3", "message:4"}) {
			t.Fatalf("runs = %v (context state must survive a restart)", got)
		}
		if computed.Load() != 2 {
			t.Fatalf("memo computed %d times, want once per session", computed.Load())
		}
	})
}

func TestRunContextCancelStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := New(Config{DisableAPIServer: true}, func(c *Context) error {
			WatchTick(c, "t", time.Second)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.Run(ctx); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if w.State() != StateStopped {
			t.Fatalf("state = %s", w.State())
		}
		// Run returns the way the watcher ended.
		w2, _ := New(Config{DisableAPIServer: true}, func(c *Context) error { return Crash("no", nil) })
		var ce *CrashError
		if err := w2.Run(context.Background()); !errors.As(err, &ce) {
			t.Fatalf("Run = %v", err)
		}
	})
}

func TestPanicsNeverKillTheEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := New(Config{DisableAPIServer: true, Recovery: RecoveryConfig{Jitter: NoJitter}}, func(c *Context) error {
			if c.Message() != nil && c.Message().Content == "panic" {
				var m map[string]int
				//lint:ignore SA5000 a real runtime panic is the point
				m["x"] = 1
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		w.OnCleanup(func(*Context, error) { panic("cleanup too") })
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		send(t, w, "panic")
		synctest.Wait()
		if w.State() != StateWaitRecover {
			t.Fatalf("state after panic = %s", w.State())
		}
		res, _ := w.Logs("effect_result", 0)
		last := res.EffectResults[len(res.EffectResults)-1]
		if last.Success || !strings.Contains(last.Error, "panic in run") || !strings.Contains(last.Stack, "engine_test.go") {
			t.Fatalf("result = %+v", last)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if w.State() != StateReady {
			t.Fatalf("state after recovery = %s", w.State())
		}
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		we, _ := w.Logs("watch_error", 0)
		if n := len(we.WatchErrorLogs); n != 1 || we.WatchErrorLogs[0].Phase != "cleanup" {
			t.Fatalf("cleanup panic not logged: %+v", we.WatchErrorLogs)
		}
	})
}

func TestRunTimeoutCancelsAndRunsNeverOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var active, maxActive atomic.Int32
		w := start(t, Config{RunTimeout: time.Second, Recovery: RecoveryConfig{Jitter: NoJitter, Base: time.Millisecond}}, func(c *Context) error {
			n := active.Add(1)
			defer active.Add(-1)
			if n > maxActive.Load() {
				maxActive.Store(n)
			}
			if c.Message() != nil && c.Message().Content == "slow" {
				<-c.Done()
				time.Sleep(500 * time.Millisecond) // ignores the cancellation a while
				return nil
			}
			return nil
		})
		send(t, w, "slow", "quick", "quick")
		time.Sleep(3 * time.Second)
		synctest.Wait()
		stop(t, w)
		if maxActive.Load() != 1 {
			t.Fatalf("%d runs overlapped", maxActive.Load())
		}
		res, _ := w.Logs("effect_result", 0)
		var timeouts, ok int
		for _, r := range res.EffectResults {
			if strings.Contains(r.Error, "exceeded its timeout of 1s") {
				timeouts++
				if r.Duration != 1500*time.Millisecond {
					t.Fatalf("timed-out run took %s", r.Duration)
				}
			} else if r.Success {
				ok++
			}
		}
		if timeouts != 1 || ok != 4 { // start, recovery, quick, quick
			t.Fatalf("timeouts %d ok %d: %+v", timeouts, ok, res.EffectResults)
		}
	})
}

func TestBackoff(t *testing.T) {
	rc := RecoveryConfig{Base: time.Second, Max: 5 * time.Minute}
	tests := []struct {
		n      int
		jitter float64
		r      float64
		want   time.Duration
	}{
		{1, 0, 0, time.Second},
		{2, 0, 0, 2 * time.Second},
		{3, 0, 0, 4 * time.Second},
		{9, 0, 0, 256 * time.Second},
		{10, 0, 0, 5 * time.Minute},
		{1000, 0, 0, 5 * time.Minute}, // no overflow
		{1, 0.2, 0.999999, 800000200 * time.Nanosecond},
		{1, 0.2, 0.5, 900 * time.Millisecond},
		{10, 0.2, 0, 5 * time.Minute},
	}
	for _, tt := range tests {
		rc.Jitter = tt.jitter
		if got := backoff(rc, tt.n, tt.r); got != tt.want {
			t.Errorf("backoff(n=%d, jitter=%v, r=%v) = %s, want %s", tt.n, tt.jitter, tt.r, got, tt.want)
		}
	}
}

func TestFailuresBackOffThenCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		var at []time.Duration
		w := start(t, Config{Recovery: RecoveryConfig{MaxFailures: 5, Base: time.Second, Max: 4 * time.Second, Jitter: NoJitter}}, func(c *Context) error {
			at = append(at, time.Since(t0))
			return errors.New("exchange down")
		})
		<-w.Done()
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 11 * time.Second}
		if !reflect.DeepEqual(at, want) {
			t.Fatalf("run times = %v, want %v", at, want)
		}
		var ce *CrashError
		if !errors.As(w.Err(), &ce) || !strings.Contains(ce.Error(), "5 consecutive failures") || !strings.Contains(ce.Error(), "exchange down") {
			t.Fatalf("err = %v", w.Err())
		}
		red, _ := w.Logs("reduce", 0)
		var states []string
		for _, r := range red.ReduceLogs {
			states = append(states, r.To.String())
		}
		if got := strings.Join(states, ","); got != "InitRun,WaitRecover,Crashed" {
			t.Fatalf("transitions = %s", got)
		}
	})
}

func TestFailureCounterResetsAfterSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fails atomic.Int32
		w := start(t, Config{Recovery: RecoveryConfig{MaxFailures: 3, Base: time.Second, Jitter: NoJitter}}, func(c *Context) error {
			if fails.Load() > 0 {
				fails.Add(-1)
				return errors.New("transient")
			}
			return nil
		})
		for round := 0; round < 4; round++ { // 4 rounds of 2 failures never reach 3 in a row
			fails.Store(2)
			send(t, w, "go")
			synctest.Wait()
			if got := w.Status().ConsecutiveFailures; got != 1 {
				t.Fatalf("round %d: failures = %d", round, got)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if got := w.Status().ConsecutiveFailures; got != 2 {
				t.Fatalf("round %d: failures = %d", round, got)
			}
			t0 := time.Now()
			time.Sleep(2 * time.Second) // the second backoff doubled
			synctest.Wait()
			if got := w.Status().ConsecutiveFailures; got != 0 || w.State() != StateReady {
				t.Fatalf("round %d after %s: failures = %d, state %s", round, time.Since(t0), got, w.State())
			}
		}
		stop(t, w)
	})
}

func TestStopIsNotDelayedByBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := start(t, Config{Recovery: RecoveryConfig{Base: 5 * time.Minute, Jitter: NoJitter}}, func(c *Context) error {
			return errors.New("down")
		})
		synctest.Wait()
		if w.State() != StateWaitRecover {
			t.Fatalf("state = %s", w.State())
		}
		t0 := time.Now()
		stop(t, w)
		if d := time.Since(t0); d != 0 {
			t.Fatalf("Stop waited %s behind the backoff", d)
		}
	})
}

func TestRulesOfHooks(t *testing.T) {
	ch1, ch2 := make(chan int), make(chan int)
	poll := func(ctx context.Context, prev int) (int, bool, error) { return prev, false, nil }
	tests := []struct {
		name   string
		first  func(c *Context)
		second func(c *Context)
		reason string
	}{
		{"kind changes", func(c *Context) { WatchTick(c, "x", time.Second) },
			func(c *Context) { WatchCall(c, "x", time.Second, poll) }, "already used by a WatchTick"},
		{"type changes", func(c *Context) { WatchCall(c, "x", time.Second, poll) },
			func(c *Context) {
				WatchCall(c, "x", time.Second, func(ctx context.Context, prev string) (string, bool, error) { return "", false, nil })
			}, "declared with type *int before, now *string"},
		{"memo type changes", func(c *Context) { Memo(c, "m", func() (int, error) { return 1, nil }) },
			func(c *Context) { Memo(c, "m", func() (string, error) { return "", nil }) }, "declared with type"},
		{"interval changes", func(c *Context) { WatchTick(c, "x", time.Second) },
			func(c *Context) { WatchTick(c, "x", time.Minute) }, "interval changed"},
		{"call interval changes", func(c *Context) { WatchCall(c, "x", time.Second, poll) },
			func(c *Context) { WatchCall(c, "x", time.Minute, poll) }, "interval changed"},
		{"channel changes", func(c *Context) { WatchFlow(c, "x", ch1) },
			func(c *Context) { WatchFlow(c, "x", ch2) }, "different channel"},
		{"twice in one run", func(c *Context) {}, func(c *Context) {
			WatchTick(c, "x", time.Second)
			WatchTick(c, "x", time.Second)
		}, "twice in one run"},
		{"empty name", func(c *Context) {}, func(c *Context) { WatchTick(c, "", time.Second) }, "empty name"},
		{"bad interval", func(c *Context) {}, func(c *Context) { WatchTick(c, "x", 0) }, "positive interval"},
		{"nil channel", func(c *Context) {}, func(c *Context) { WatchFlow[int](c, "x", nil) }, "nil channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := start(t, Config{Recovery: RecoveryConfig{MaxFailures: 1}}, func(c *Context) error {
					if c.Message() == nil {
						tt.first(c)
					} else {
						tt.second(c)
					}
					return nil // the hook error fails the run all the same
				})
				send(t, w, "again")
				<-w.Done()
				var he *HookError
				if !errors.As(w.Err(), &he) || !strings.Contains(he.Reason, tt.reason) {
					t.Fatalf("err = %v, want a *HookError with %q", w.Err(), tt.reason)
				}
			})
		})
	}
}

func TestHookOutsideItsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		saved := make(chan *Context, 1)
		w := start(t, Config{}, func(c *Context) error {
			if c.Trigger().Kind == TriggerStart {
				saved <- c
			}
			return nil
		})
		c := <-saved
		synctest.Wait()
		if tk := WatchTick(c, "late", time.Second); tk != (Tick{}) {
			t.Fatalf("late hook returned %+v", tk)
		}
		we, _ := w.Logs("watch_error", 0)
		if len(we.WatchErrorLogs) != 1 || !strings.Contains(we.WatchErrorLogs[0].Error, "outside the run") {
			t.Fatalf("watch errors = %+v", we.WatchErrorLogs)
		}
		if w.State() != StateReady {
			t.Fatalf("state = %s", w.State())
		}
		stop(t, w)
	})
}

func TestConditionalWatchStaysActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int, 1)
		var rec recorder
		w := start(t, Config{}, func(c *Context) error {
			if c.Message() == nil {
				v, _ := WatchFlow(c, "v", ch) // read only when not handling a message
				rec.add(fmt.Sprint(v))
			}
			return nil
		})
		send(t, w, "skip the watch")
		synctest.Wait()
		ch <- 5
		synctest.Wait()
		stop(t, w)
		if got := rec.get(); !reflect.DeepEqual(got, []string{"0", "5"}) {
			t.Fatalf("seen = %v", got)
		}
	})
}

func TestMemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		var rec recorder
		w := start(t, Config{MaxMemoEntries: 2}, func(c *Context) error {
			m := c.Message()
			if m == nil {
				return nil
			}
			switch m.Content {
			case "get":
				v, err := Memo(c, "a", func() (int, error) { return int(calls.Add(1)), nil })
				rec.add(fmt.Sprintf("a=%d err=%v", v, err))
			case "fail":
				_, err := Memo(c, "b", func() (int, error) { return 0, errors.New("not now") })
				rec.add(fmt.Sprintf("b err=%v", err))
			case "fill":
				Memo(c, "b", func() (int, error) { return 2, nil })
				_, err := Memo(c, "c", func() (int, error) { return 3, nil })
				rec.add(fmt.Sprintf("full=%v", errors.Is(err, ErrMemoFull)))
			case "panic":
				c.ClearMemo("b")
				_, err := Memo(c, "p", func() (int, error) { panic("oops") })
				var pe *PanicError
				rec.add(fmt.Sprintf("panic=%v", errors.As(err, &pe)))
			case "clear":
				rec.add(fmt.Sprintf("cleared=%v", c.ClearMemo("a")))
			}
			return nil
		})
		send(t, w, "get", "get", "fail", "fill", "panic", "clear", "get")
		synctest.Wait()
		if got := w.MemoCache(); !reflect.DeepEqual(got, map[string]any{"a": 2}) {
			t.Fatalf("cache = %v", got)
		}
		if !w.ClearMemo("a") || w.ClearMemo("a") || w.ClearMemo("nope") {
			t.Fatal("Watcher.ClearMemo reports wrongly")
		}
		stop(t, w)
		want := []string{"a=1 err=<nil>", "a=1 err=<nil>", "b err=not now", "full=true", "panic=true", "cleared=true", "a=2 err=<nil>"}
		if got := rec.get(); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	})
}

func TestLogsAreBoundedWithMonotonicIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := start(t, Config{MaxLogEntries: 5}, func(c *Context) error { return nil })
		for i := range 20 {
			send(t, w, fmt.Sprint(i))
		}
		synctest.Wait()
		stop(t, w)
		l, ok := w.Logs("all", 0)
		if !ok {
			t.Fatal("kind all rejected")
		}
		if len(l.EffectResults) != 5 {
			t.Fatalf("results %d effects %d, want 5 each", len(l.EffectResults), len(l.EffectLogs))
		}
		for i := 1; i < len(l.EffectResults); i++ {
			if l.EffectResults[i].ID <= l.EffectResults[i-1].ID || l.EffectResults[i].RunID != l.EffectResults[i-1].RunID+1 {
				t.Fatalf("ids not monotonic: %+v", l.EffectResults)
			}
		}
		if last := l.EffectResults[4]; last.Trigger != TriggerMessage || last.Message != "19" || !last.Success {
			t.Fatalf("last result = %+v", last)
		}
		if _, ok := w.Logs("bogus", 0); ok {
			t.Fatal("unknown kind accepted")
		}
		one, _ := w.Logs("reduce", 1)
		if len(one.ReduceLogs) != 1 || one.ReduceLogs[0].To != StateStopped || len(one.EffectResults) != 0 {
			t.Fatalf("limit/kind filter: %+v", one)
		}
	})
}

func TestStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := start(t, Config{}, func(c *Context) error { return nil })
		time.Sleep(90 * time.Second)
		synctest.Wait()
		st := w.Status()
		if st.State != StateReady || !st.IsRunning || st.Uptime != "1m30s" || st.Runs != 1 {
			t.Fatalf("status = %+v", st)
		}
		stop(t, w)
		if st := w.Status(); st.State != StateStopped || st.IsRunning {
			t.Fatalf("status after stop = %+v", st)
		}
	})
}

func TestExitCode(t *testing.T) {
	for err, want := range map[error]int{
		nil:                             0,
		Crash("x", nil):                 1,
		Kill("x"):                       2,
		errors.New("listen failed"):     3,
		fmt.Errorf("w: %w", Kill("x")):  2,
		fmt.Errorf("w: %w", Stop("ok")): 3,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
}

// TestSlowPollDoesNotHoldUpOthers: the watches of one interval share a
// ticker; a slow poll moves to its own goroutine after its first slow run,
// and one variable's polls never overlap.
func TestSlowPollDoesNotHoldUpOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fast, slowActive, slowMax atomic.Int32
		w := start(t, Config{}, func(c *Context) error {
			WatchCall(c, "slow", 10*time.Millisecond, func(ctx context.Context, prev int) (int, bool, error) {
				if n := slowActive.Add(1); n > slowMax.Load() {
					slowMax.Store(n)
				}
				time.Sleep(time.Second) // say, a slow exchange
				slowActive.Add(-1)
				return prev, false, nil
			})
			WatchCall(c, "fast", 10*time.Millisecond, func(ctx context.Context, prev int) (int, bool, error) {
				fast.Add(1)
				return prev, false, nil
			})
			return nil
		})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		stop(t, w)
		// 500 ticks in 5 s; at most one 1 s stall before "slow" is known slow.
		if n := fast.Load(); n < 350 {
			t.Fatalf("fast polled %d times in 5s at 10ms", n)
		}
		if slowMax.Load() != 1 {
			t.Fatalf("slow polls overlapped: %d at once", slowMax.Load())
		}
	})
}

// TestMessageIDsIncreaseInRunOrder: with many producers sending at once,
// message ids are strictly increasing in the order the messages run (the
// id is the message's place in the queue, not in some producer's clock).
// It runs outside a synctest bubble on purpose: the producers must really
// run in parallel for the interleaving to happen.
func TestMessageIDsIncreaseInRunOrder(t *testing.T) {
	leaktest.Check(t)
	const producers, each = 8, 12_500
	var (
		mu   sync.Mutex
		ids  []uint64
		done = make(chan struct{})
	)
	w := start(t, Config{}, func(c *Context) error {
		if m := c.Message(); m != nil {
			mu.Lock()
			ids = append(ids, m.ID)
			n := len(ids)
			mu.Unlock()
			if n == producers*each {
				close(done)
			}
		}
		return nil
	})
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range each {
				if err := w.Send(context.Background(), "m"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-done
	stop(t, w)
	mu.Lock()
	defer mu.Unlock()
	backwards := 0
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			if backwards < 5 {
				t.Errorf("run %d had message id %d after id %d", i, ids[i], ids[i-1])
			}
			backwards++
		}
	}
	if backwards > 0 {
		t.Fatalf("message ids went backwards %d times in %d runs", backwards, len(ids))
	}
	if ids[0] != 1 || ids[len(ids)-1] != producers*each {
		t.Fatalf("ids run from %d to %d, want 1 to %d", ids[0], ids[len(ids)-1], producers*each)
	}
}

// TestIdleWatcherHeap: an idle started watcher with the default Config
// (its WatcherAPI listening) takes well under 1 MiB of heap: logs and
// queues take memory as they fill, not up front. (It took 26 MB when six
// log rings of 50,000 entries and a 50,000-slot variable channel were
// allocated at New and Start.)
func TestIdleWatcherHeap(t *testing.T) {
	leaktest.Check(t)
	const n = 20
	live := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := live()
	ws := make([]*Watcher, n)
	for i := range ws {
		started := make(chan struct{})
		w, err := New(Config{APIAddr: "127.0.0.1:0"}, func(c *Context) error {
			if c.Trigger().Kind == TriggerStart {
				close(started)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		<-started
		ws[i] = w
	}
	for _, w := range ws {
		for w.State() != StateReady {
			time.Sleep(time.Millisecond)
		}
	}
	perWatcher := (int64(live()) - int64(before)) / n
	for _, w := range ws {
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("heap per idle watcher: %d bytes", perWatcher)
	if perWatcher > 1<<20 {
		t.Fatalf("an idle watcher takes %d bytes of heap, want at most 1 MiB", perWatcher)
	}
}

// TestPollThatTurnsSlowMovesOut: a poll that is quick at first (so it runs
// inline on the shared goroutine) and then turns slow holds the other polls
// up at most twice (the round that shows it, the round that finds it), then
// runs on its own goroutine; its polls never overlap.
func TestPollThatTurnsSlowMovesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fast, slowCalls, slowActive, slowMax atomic.Int32
		w := start(t, Config{}, func(c *Context) error {
			WatchCall(c, "fast", 10*time.Millisecond, func(ctx context.Context, prev int) (int, bool, error) {
				fast.Add(1)
				return prev, false, nil
			})
			WatchCall(c, "turns-slow", 10*time.Millisecond, func(ctx context.Context, prev int) (int, bool, error) {
				if n := slowActive.Add(1); n > slowMax.Load() {
					slowMax.Store(n)
				}
				defer slowActive.Add(-1)
				if slowCalls.Add(1) > 5 {
					time.Sleep(time.Second) // the exchange got slow
				}
				return prev, false, nil
			})
			return nil
		})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		stop(t, w)
		// 1,000 rounds in 10 s; two 1 s stalls cost about 200 of them.
		if n := fast.Load(); n < 750 {
			t.Fatalf("fast polled %d times in 10s at 10ms", n)
		}
		if slowMax.Load() != 1 {
			t.Fatalf("slow polls overlapped: %d at once", slowMax.Load())
		}
	})
}

// TestPanickingPollDoesNotEndItsRound: polls of one interval run in one
// round; a poll that panics is logged and the round goes on with the next.
func TestPanickingPollDoesNotEndItsRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var after atomic.Int32
		w := start(t, Config{}, func(c *Context) error {
			WatchCall(c, "a-panics", time.Second, func(ctx context.Context, prev int) (int, bool, error) {
				panic("always")
			})
			WatchCall(c, "b-after-it", time.Second, func(ctx context.Context, prev int) (int, bool, error) {
				after.Add(1)
				return prev, false, nil
			})
			return nil
		})
		time.Sleep(5500 * time.Millisecond)
		synctest.Wait()
		stop(t, w)
		if n := after.Load(); n != 6 { // the first poll, then one a second
			t.Fatalf("the poll after a panicking one ran %d times in 5.5s, want 6", n)
		}
		logs, _ := w.Logs("watch_error", 0)
		if n := len(logs.WatchErrorLogs); n != 6 {
			t.Fatalf("%d watch errors, want 6 (one per poll of a-panics)", n)
		}
		for _, e := range logs.WatchErrorLogs {
			if e.Var != "a-panics" || e.Phase != "poll" || !strings.Contains(e.Error, "always") {
				t.Fatalf("watch error = %+v", e)
			}
		}
	})
}

// TestRunDeadlineAndTimestamps: a run's Deadline is its start plus
// RunTimeout, the cleanup context's is the start of cleanup plus
// CleanupTimeout, and the times in messages and logs are the clock's, also
// after long idle spells (the engine's and the senders' clocks take a full
// reading again after clockRebase).
func TestRunDeadlineAndTimestamps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type seen struct{ start, deadline, received time.Time }
		runs := make(chan seen, 10)
		cfg := Config{RunTimeout: 3 * time.Second, CleanupTimeout: 7 * time.Second}
		w := start(t, cfg, func(c *Context) error {
			d, ok := c.Deadline()
			if !ok {
				t.Error("a run has no deadline")
			}
			var received time.Time
			if m := c.Message(); m != nil {
				received = m.ReceivedAt
			}
			runs <- seen{time.Now(), d, received}
			if c.Message() != nil {
				time.Sleep(250 * time.Millisecond) // longer than clockRebase
			}
			return nil
		})
		cleanupDeadline := make(chan time.Time, 1)
		w.OnCleanup(func(c *Context, _ error) {
			d, _ := c.Deadline()
			cleanupDeadline <- d.Add(-7 * time.Second)
		})
		// OnCleanup takes effect at the next Start: restart once.
		stop(t, w)
		<-runs
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		<-runs
		synctest.Wait() // the initial run has settled
		for _, gap := range []time.Duration{0, 50 * time.Millisecond, 90 * time.Second} {
			time.Sleep(gap)
			sent := time.Now()
			send(t, w, "m")
			r := <-runs
			if !r.start.Equal(sent) || !r.deadline.Equal(sent.Add(3*time.Second)) || !r.received.Equal(sent) {
				t.Fatalf("after %s idle: message received %s, its run started %s with deadline %s, want %s and %s", gap, r.received, r.start, r.deadline, sent, sent.Add(3*time.Second))
			}
			if sig := w.Signals().RecentSignals; !sig[len(sig)-1].CreatedAt.Equal(sent) {
				t.Fatalf("after %s idle: recent signal %+v, want it at %s", gap, sig[len(sig)-1], sent)
			}
			time.Sleep(250 * time.Millisecond)
			synctest.Wait() // the run has ended and settled
			l, _ := w.Logs("effect_result", 1)
			res := l.EffectResults[0]
			if !res.StartedAt.Equal(sent) || res.Duration != 250*time.Millisecond {
				t.Fatalf("after %s idle: result started %s and took %s, want %s and 250ms", gap, res.StartedAt, res.Duration, sent)
			}
			if st := w.Status(); !st.LastUpdate.Equal(sent.Add(250 * time.Millisecond)) {
				t.Fatalf("after %s idle: last update %s, want %s", gap, st.LastUpdate, sent.Add(250*time.Millisecond))
			}
		}
		stopAt := time.Now()
		stop(t, w)
		if d := <-cleanupDeadline; !d.Equal(stopAt) {
			t.Fatalf("cleanup deadline is %s after its start", d.Sub(stopAt))
		}
		l, _ := w.Logs("reduce", 1)
		if at := l.ReduceLogs[0].Time; !at.Equal(stopAt) {
			t.Fatalf("stopped at %s, logged %s", stopAt, at)
		}
	})
}

// TestSendWithNilContext: a nil context is bad input, not a reason to
// panic: Send waits as long as the session runs, like with
// context.Background. (It used to panic once the queue was full.)
func TestSendWithNilContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		w := start(t, Config{SignalCapacity: 1}, func(c *Context) error {
			if c.Trigger().Kind == TriggerStart {
				<-release
			}
			return nil
		})
		if err := w.TrySend("fills the queue"); err != nil {
			t.Fatal(err)
		}
		sent := make(chan error, 1)
		go func() {
			//lint:ignore SA1012 a nil context is the input under test
			sent <- w.Send(nil, "waits")
		}()
		synctest.Wait()
		select {
		case err := <-sent:
			t.Fatalf("Send into a full queue returned at once: %v", err)
		default:
		}
		close(release)
		if err := <-sent; err != nil {
			t.Fatalf("Send(nil) = %v", err)
		}
		stop(t, w)
	})
}
