package hersh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/hershyorg/hershy/hersh/internal/leaktest"
)

// hangGuard bounds waits that only fail when the code under test deadlocks.
// It is never used to assert timing.
const hangGuard = 60 * time.Second

// stateHarness runs closures inside runs of a real watcher: each do sends a
// user message; the run it triggers executes the next closure.
type stateHarness struct {
	w    *Watcher
	jobs chan func(*Context)
	done chan struct{}
}

// newStateHarness creates (but does not start) a watcher whose message runs
// execute the closures given to do. It is stopped when the test ends (Stop
// is idempotent, so tests may stop it earlier).
func newStateHarness(t testing.TB, cfg Config) *stateHarness {
	t.Helper()
	h := &stateHarness{jobs: make(chan func(*Context)), done: make(chan struct{})}
	cfg.DisableAPIServer = true
	w, err := New(cfg, func(c *Context) error {
		if c.Message() == nil {
			return nil // the initial run
		}
		defer func() { h.done <- struct{}{} }()
		(<-h.jobs)(c)
		return nil
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.w = w
	t.Cleanup(func() { h.stop(t) }) // a no-op unless started
	return h
}

// startStateHarness creates and starts a watcher.
func startStateHarness(t testing.TB, cfg Config) *stateHarness {
	t.Helper()
	h := newStateHarness(t, cfg)
	if err := h.w.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return h
}

// do runs fn inside a run of the watcher and returns once that run ended.
func (h *stateHarness) do(t testing.TB, fn func(c *Context)) {
	t.Helper()
	if err := h.w.Send(context.Background(), "job"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	select {
	case h.jobs <- fn:
	case <-guard.C:
		t.Fatalf("no run picked up the job (engine stuck?)")
	}
	select {
	case <-h.done:
	case <-guard.C:
		t.Fatalf("the job did not finish (deadlock?)")
	}
}

func (h *stateHarness) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := h.w.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := h.w.Err(); err != nil {
		t.Errorf("Err after Stop: %v", err)
	}
}

func (h *stateHarness) contextLogs(key string) []ContextLog {
	l, _ := h.w.Logs("context", 0)
	var out []ContextLog
	for _, e := range l.ContextLogs {
		if e.Key == key {
			out = append(out, e)
		}
	}
	return out
}

func (h *stateHarness) faults() []StateFaultLog {
	l, _ := h.w.Logs("state_fault", 0)
	return l.StateFaultLogs
}

// noStateEnv makes sure a test without a state directory is not made
// durable by the environment it runs in.
func noStateEnv(t *testing.T) { t.Setenv(EnvStateDir, "") }

type point struct {
	X, Y int
	Name string
}

// ---------------------------------------------------------------------------
// Typed keys in runs

func TestKeyGetSetUpdateDelete(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	h := startStateHarness(t, Config{})

	count := NewKey[int]("count")
	label := NewKey[string]("label")
	pos := NewKey[point]("pos")
	tags := NewKey[map[string]int]("tags")
	if count.Name() != "count" {
		t.Fatalf("Name = %q", count.Name())
	}

	h.do(t, func(c *Context) {
		if v, ok := count.Get(c); ok || v != 0 {
			t.Errorf("unset Get = %v, %v; want 0, false", v, ok)
		}
		if v, err := count.Load(c); !errors.Is(err, ErrNotSet) || v != 0 {
			t.Errorf("unset Load = %v, %v; want 0, ErrNotSet", v, err)
		}
		if err := count.Set(c, 41); err != nil {
			t.Errorf("Set: %v", err)
		}
		if err := label.Set(c, "hello"); err != nil {
			t.Errorf("Set: %v", err)
		}
		if err := pos.Set(c, point{1, 2, "p"}); err != nil {
			t.Errorf("Set: %v", err)
		}
		if err := tags.Set(c, map[string]int{"a": 1}); err != nil {
			t.Errorf("Set: %v", err)
		}
	})
	// Values outlive the run that set them.
	h.do(t, func(c *Context) {
		if v, ok := count.Get(c); !ok || v != 41 {
			t.Errorf("Get = %v, %v; want 41, true", v, ok)
		}
		if v, err := label.Load(c); err != nil || v != "hello" {
			t.Errorf("Load = %q, %v; want hello", v, err)
		}
		if v, _ := pos.Get(c); v != (point{1, 2, "p"}) {
			t.Errorf("pos = %+v", v)
		}
		if v, _ := tags.Get(c); !reflect.DeepEqual(v, map[string]int{"a": 1}) {
			t.Errorf("tags = %v", v)
		}
		n, err := count.Update(c, func(cur int) (int, error) { return cur + 1, nil })
		if err != nil || n != 42 {
			t.Errorf("Update = %v, %v; want 42, nil", n, err)
		}
		if v, _ := count.Get(c); v != 42 {
			t.Errorf("after Update Get = %v; want 42", v)
		}
		// Update of an unset key starts from the zero value.
		fresh := NewKey[int]("fresh")
		var got int = -1
		n, err = fresh.Update(c, func(cur int) (int, error) { got = cur; return cur + 10, nil })
		if err != nil || n != 10 || got != 0 {
			t.Errorf("Update of unset = %v, %v (fn saw %v); want 10, nil (fn saw 0)", n, err, got)
		}
		if err := count.Delete(c); err != nil {
			t.Errorf("Delete: %v", err)
		}
		if _, err := count.Load(c); !errors.Is(err, ErrNotSet) {
			t.Errorf("after Delete Load err = %v; want ErrNotSet", err)
		}
		// Deleting an unset key is not an error.
		if err := count.Delete(c); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		// Other keys are untouched.
		if v, _ := label.Get(c); v != "hello" {
			t.Errorf("label = %q after deleting count", v)
		}
	})
	// A restart in the same process keeps context state (memos and watches
	// start afresh, state does not).
	h.stop(t)
	if err := h.w.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	h.do(t, func(c *Context) {
		if v, _ := label.Get(c); v != "hello" {
			t.Errorf("after restart label = %q; want hello", v)
		}
		if _, ok := count.Get(c); ok {
			t.Errorf("deleted key came back after restart")
		}
	})
}

func TestKeyTypeMismatch(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	h := startStateHarness(t, Config{})

	asString := NewKey[string]("k")
	asInt := NewKey[int]("k")
	h.do(t, func(c *Context) {
		if err := asString.Set(c, "text"); err != nil {
			t.Errorf("Set: %v", err)
		}
		v, err := asInt.Load(c)
		var te *TypeError
		if !errors.As(err, &te) {
			t.Fatalf("Load as int: err = %v (%T); want *TypeError", err, err)
		}
		if v != 0 || te.Key != "k" || te.Want != "int" {
			t.Errorf("Load = %v, %+v; want 0, Key k, Want int", v, te)
		}
		if errors.Is(err, ErrNotSet) {
			t.Errorf("type error also matches ErrNotSet")
		}
		if v, ok := asInt.Get(c); ok || v != 0 {
			t.Errorf("Get as int = %v, %v; want 0, false", v, ok)
		}
		// Update as the wrong type fails without calling fn or changing the value.
		called := false
		_, err = asInt.Update(c, func(int) (int, error) { called = true; return 1, nil })
		if !errors.As(err, &te) || called {
			t.Errorf("Update as int: err = %v, fn called = %v; want *TypeError, not called", err, called)
		}
		if s, _ := asString.Get(c); s != "text" {
			t.Errorf("value changed to %q", s)
		}
	})
	faults := h.faults()
	if len(faults) != 3 { // Load, Get, Update
		t.Fatalf("state faults = %+v; want 3", faults)
	}
	for _, f := range faults {
		if f.Key != "k" || !strings.Contains(f.Error, "does not hold a int") || !strings.Contains(f.Error, "string") {
			t.Errorf("fault = %+v", f)
		}
	}
}

func TestKeyEmptyName(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	h := startStateHarness(t, Config{})
	k := NewKey[int]("")
	h.do(t, func(c *Context) {
		if _, err := k.Load(c); !errors.Is(err, ErrEmptyKey) {
			t.Errorf("Load: %v", err)
		}
		if _, ok := k.Get(c); ok {
			t.Errorf("Get ok")
		}
		if err := k.Set(c, 1); !errors.Is(err, ErrEmptyKey) {
			t.Errorf("Set: %v", err)
		}
		called := false
		if _, err := k.Update(c, func(int) (int, error) { called = true; return 1, nil }); !errors.Is(err, ErrEmptyKey) || called {
			t.Errorf("Update: %v (fn called %v)", err, called)
		}
		if err := k.Delete(c); !errors.Is(err, ErrEmptyKey) {
			t.Errorf("Delete: %v", err)
		}
	})
	if l := h.contextLogs(""); len(l) != 0 {
		t.Errorf("context logs for empty key: %+v", l)
	}
}

// A nil value of an interface-typed key is a value like any other.
func TestKeyNilInterfaceValue(t *testing.T) {
	leaktest.Check(t)
	forEachDurability(t, func(t *testing.T, durable bool, cfg Config) {
		h := startStateHarness(t, cfg)
		anyKey := NewKey[any]("any")
		errKey := NewKey[error]("err")
		h.do(t, func(c *Context) {
			if err := anyKey.Set(c, nil); err != nil {
				t.Errorf("Set(nil): %v", err)
			}
			if v, err := anyKey.Load(c); err != nil || v != nil {
				t.Errorf("Load = %v, %v; want nil, nil", v, err)
			}
			if err := errKey.Set(c, nil); err != nil {
				t.Errorf("Set(nil error): %v", err)
			}
			if v, ok := errKey.Get(c); !ok || v != nil {
				t.Errorf("Get = %v, %v; want nil, true", v, ok)
			}
			n, err := NewKey[int]("any").Load(c)
			var te *TypeError
			if !errors.As(err, &te) || n != 0 {
				t.Errorf("nil read as int = %v, %v; want *TypeError", n, err)
			}
		})
		if f := h.faults(); len(f) != 1 || f[0].Key != "any" {
			t.Errorf("faults = %+v; want one for key any", f)
		}
	})
}

// ---------------------------------------------------------------------------
// Update: atomicity, no lock held while fn runs, errors and panics

func TestUpdateAtomicUnderContention(t *testing.T) {
	leaktest.Check(t)
	forEachDurability(t, func(t *testing.T, durable bool, cfg Config) {
		h := startStateHarness(t, cfg)
		const goroutines, perG = 8, 400
		counter := NewKey[int]("counter")
		var (
			wg    sync.WaitGroup
			calls atomic.Int64
			fails atomic.Int64
			start = make(chan struct{})
		)
		h.do(t, func(c *Context) {
			for range goroutines {
				wg.Add(1)
				// The run's Context stays usable for state after the run ends.
				go func() {
					defer wg.Done()
					<-start
					for range perG {
						if _, err := counter.Update(c, func(cur int) (int, error) {
							calls.Add(1)
							return cur + 1, nil
						}); err != nil {
							fails.Add(1)
							t.Errorf("Update: %v", err)
							return
						}
					}
				}()
			}
		})
		close(start) // the run has ended; the goroutines race now
		wg.Wait()
		const want = goroutines * perG
		h.do(t, func(c *Context) {
			if v, err := counter.Load(c); err != nil || v != want {
				t.Errorf("counter = %v, %v; want %d", v, err, want)
			}
		})
		if fails.Load() != 0 {
			t.Fatalf("%d updates failed", fails.Load())
		}
		if calls.Load() < want {
			t.Errorf("fn called %d times; want at least %d", calls.Load(), want)
		}
		// Every committed update is logged once, and the log is in commit
		// order: the values are exactly 1..want.
		logs := h.contextLogs("counter")
		if len(logs) != want {
			t.Fatalf("%d context log entries; want %d", len(logs), want)
		}
		for i, e := range logs {
			if e.Op != "update" || e.Value != strconv.Itoa(i+1) {
				t.Fatalf("log entry %d = %+v; want update %d", i, e, i+1)
			}
			if i > 0 && e.ID <= logs[i-1].ID {
				t.Fatalf("log ids not increasing at %d: %d after %d", i, e.ID, logs[i-1].ID)
			}
		}
		if durable {
			h.stop(t)
			if got := readStateFile(t, cfg.StateDir).Values["counter"]; string(got) != strconv.Itoa(want) {
				t.Errorf("state file counter = %s; want %d", got, want)
			}
		}
	})
}

func TestUpdateHoldsNoLockWhileFnRuns(t *testing.T) {
	leaktest.Check(t)
	forEachDurability(t, func(t *testing.T, durable bool, cfg Config) {
		h := startStateHarness(t, cfg)
		a := NewKey[int]("a")
		b := NewKey[string]("b")
		other := NewKey[int]("other")
		h.do(t, func(c *Context) {
			if err := a.Set(c, 1); err != nil {
				t.Errorf("Set: %v", err)
			}
			if err := other.Set(c, 100); err != nil {
				t.Errorf("Set: %v", err)
			}
			n, err := a.Update(c, func(cur int) (int, error) {
				// Each of these would deadlock if the store lock were held.
				if v, ok := a.Get(c); !ok || v != cur {
					t.Errorf("Get of the same key inside fn = %v, %v; want %v", v, ok, cur)
				}
				if v, _ := other.Get(c); v != 100 {
					t.Errorf("Get inside fn = %v", v)
				}
				if err := b.Set(c, "from fn"); err != nil {
					t.Errorf("Set inside fn: %v", err)
				}
				if _, err := other.Update(c, func(o int) (int, error) { return o + cur, nil }); err != nil {
					t.Errorf("nested Update: %v", err)
				}
				if err := NewKey[int]("gone").Delete(c); err != nil {
					t.Errorf("Delete inside fn: %v", err)
				}
				// Reading the logs takes the log locks.
				h.w.Logs("all", 1)
				return cur * 10, nil
			})
			if err != nil || n != 10 {
				t.Errorf("Update = %v, %v; want 10", n, err)
			}
			if v, _ := b.Get(c); v != "from fn" {
				t.Errorf("b = %q", v)
			}
			if v, _ := other.Get(c); v != 101 {
				t.Errorf("other = %v; want 101", v)
			}
		})
	})
}

// Setting the key being updated from inside fn makes the update retry
// with the new value (it never overwrites a change it did not see).
func TestUpdateRetriesOnConcurrentChange(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	h := startStateHarness(t, Config{})
	k := NewKey[int]("k")
	h.do(t, func(c *Context) {
		var seen []int
		n, err := k.Update(c, func(cur int) (int, error) {
			seen = append(seen, cur)
			if len(seen) == 1 {
				if err := k.Set(c, 5); err != nil { // a concurrent writer
					t.Errorf("Set: %v", err)
				}
			}
			return cur + 1, nil
		})
		if err != nil || n != 6 || !reflect.DeepEqual(seen, []int{0, 5}) {
			t.Errorf("Update = %v, %v, fn saw %v; want 6, nil, [0 5]", n, err, seen)
		}
		// An update that loses many races in a row (here 500, simulated by
		// a writer that changes the key during each of the first 500
		// calls) still succeeds: contention is not an error.
		if err := k.Set(c, 0); err != nil {
			t.Errorf("Set: %v", err)
		}
		calls := 0
		n, err = k.Update(c, func(cur int) (int, error) {
			calls++
			if calls <= 500 {
				_ = k.Set(c, calls)
			}
			return cur + 1, nil
		})
		if err != nil || n != 501 || calls != 501 {
			t.Errorf("Update after 500 lost races = %v, %v (%d calls); want 501, nil (501 calls)", n, err, calls)
		}
		// An update that never wins (fn always changes the key itself)
		// gives up with an error instead of looping forever; the value
		// is what the last writer set.
		calls = 0
		_, err = k.Update(c, func(cur int) (int, error) {
			calls++
			_ = k.Set(c, -calls)
			return 1000, nil
		})
		if err == nil || !strings.Contains(err.Error(), "update lost") {
			t.Errorf("self-defeating Update err = %v", err)
		}
		if v, _ := k.Get(c); v != -calls || v == 1000 {
			t.Errorf("k = %v; want %d", v, -calls)
		}
	})
}

func TestUpdateErrorAndPanicLeaveValue(t *testing.T) {
	leaktest.Check(t)
	forEachDurability(t, func(t *testing.T, durable bool, cfg Config) {
		h := startStateHarness(t, cfg)
		k := NewKey[int]("k")
		unset := NewKey[int]("unset")
		errBoom := errors.New("boom")
		h.do(t, func(c *Context) {
			if err := k.Set(c, 7); err != nil {
				t.Errorf("Set: %v", err)
			}
			n, err := k.Update(c, func(cur int) (int, error) { return cur + 1, errBoom })
			if !errors.Is(err, errBoom) || n != 0 {
				t.Errorf("Update with error = %v, %v; want 0, boom", n, err)
			}
			if v, _ := k.Get(c); v != 7 {
				t.Errorf("after error k = %v; want 7", v)
			}

			n, err = k.Update(c, func(cur int) (int, error) { panic("kaboom") })
			var pe *PanicError
			if !errors.As(err, &pe) || n != 0 {
				t.Fatalf("Update with panic = %v, %v (%T); want *PanicError", n, err, err)
			}
			if pe.Where != "update" || pe.Value != "kaboom" || !strings.Contains(pe.Stack, "store_test.go") {
				t.Errorf("PanicError = where %q value %v stack %q", pe.Where, pe.Value, pe.Stack)
			}
			if v, _ := k.Get(c); v != 7 {
				t.Errorf("after panic k = %v; want 7", v)
			}
			// Wrapped, it is still recognised.
			if !errors.As(fmt.Errorf("ctx: %w", err), &pe) {
				t.Errorf("wrapped PanicError not recognised")
			}

			// A panic or error on an unset key leaves it unset.
			if _, err := unset.Update(c, func(int) (int, error) { panic(errBoom) }); !errors.As(err, &pe) {
				t.Errorf("panic on unset: %v", err)
			}
			if _, err := unset.Update(c, func(int) (int, error) { return 3, errBoom }); !errors.Is(err, errBoom) {
				t.Errorf("error on unset: %v", err)
			}
			if _, err := unset.Load(c); !errors.Is(err, ErrNotSet) {
				t.Errorf("unset after failed updates: %v", err)
			}
		})
		// The engine survived; only the successful Set was logged.
		if l := h.contextLogs("k"); len(l) != 1 || l[0].Op != "set" {
			t.Errorf("context logs = %+v", l)
		}
		if l := h.contextLogs("unset"); len(l) != 0 {
			t.Errorf("context logs for unset = %+v", l)
		}
		h.do(t, func(c *Context) { // the engine still runs
			if v, _ := k.Get(c); v != 7 {
				t.Errorf("k = %v; want 7", v)
			}
		})
		if durable {
			h.stop(t)
			f := readStateFile(t, cfg.StateDir)
			if string(f.Values["k"]) != "7" {
				t.Errorf("file k = %s; want 7", f.Values["k"])
			}
			if _, ok := f.Values["unset"]; ok {
				t.Errorf("file has unset: %s", f.Values["unset"])
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Context logs

func TestContextLogs(t *testing.T) {
	leaktest.Check(t)
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			noStateEnv(t)
			dir := ""
			if durable {
				dir = t.TempDir()
			}
			h := startStateHarness(t, Config{StateDir: dir})
			n := NewKey[int]("n")
			p := NewKey[point]("p")
			h.do(t, func(c *Context) {
				_ = n.Set(c, 1)
				_, _ = n.Update(c, func(v int) (int, error) { return v + 2, nil })
				_ = p.Set(c, point{3, 4, "q"})
				_ = n.Delete(c)
			})
			want := []ContextLog{
				{Key: "n", Op: "set", Value: "1"},
				{Key: "n", Op: "update", Value: "3"},
				{Key: "p", Op: "set", Value: `{"X":3,"Y":4,"Name":"q"}`}, // shown as JSON, durable or not
				{Key: "n", Op: "delete"},
			}
			l, _ := h.w.Logs("context", 0)
			if got := stripLogMeta(l.ContextLogs); !reflect.DeepEqual(got, want) {
				t.Fatalf("context logs:\n got %+v\nwant %+v", got, want)
			}
			for i, e := range l.ContextLogs {
				if e.ID == 0 || e.Time.IsZero() || (i > 0 && e.ID <= l.ContextLogs[i-1].ID) {
					t.Errorf("entry %d: id %d time %v", i, e.ID, e.Time)
				}
			}
			if !durable {
				return
			}
			// A new watcher on the same directory logs what it restored.
			h.stop(t)
			h2 := startStateHarness(t, Config{StateDir: dir})
			l, _ = h2.w.Logs("context", 0)
			want = []ContextLog{{Key: "p", Op: "restore", Value: `{"X":3,"Y":4,"Name":"q"}`}}
			if got := stripLogMeta(l.ContextLogs); !reflect.DeepEqual(got, want) {
				t.Fatalf("restore logs:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// Long values are shortened in the log, never cut inside a character.
func TestContextLogTruncatesLongValues(t *testing.T) {
	leaktest.Check(t)
	forEachDurability(t, func(t *testing.T, durable bool, cfg Config) {
		h := startStateHarness(t, cfg)
		long := strings.Repeat("é", 1000) // 2 bytes each
		k := NewKey[string]("long")
		h.do(t, func(c *Context) {
			if err := k.Set(c, long); err != nil {
				t.Errorf("Set: %v", err)
			}
			if v, _ := k.Get(c); v != long {
				t.Errorf("the value itself was shortened")
			}
		})
		l := h.contextLogs("long")
		if len(l) != 1 {
			t.Fatalf("logs = %d", len(l))
		}
		v := l[0].Value
		if !utf8.ValidString(v) || !strings.HasSuffix(v, "…") || len(v) > 512+len("…") || len(v) < 500 {
			t.Errorf("shown value (%d bytes, valid %v) = %q", len(v), utf8.ValidString(v), v)
		}
	})
}

func stripLogMeta(in []ContextLog) []ContextLog {
	out := make([]ContextLog, len(in))
	for i, e := range in {
		out[i] = ContextLog{Key: e.Key, Op: e.Op, Value: e.Value}
	}
	return out
}

// A value's String method is user code: a panicking one is survived, and
// one that reads state does not deadlock.
func TestContextLogUserStringMethod(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	h := startStateHarness(t, Config{})
	h.do(t, func(c *Context) {
		if err := NewKey[panicStringer]("ps").Set(c, panicStringer{}); err != nil {
			t.Errorf("Set: %v", err)
		}
		if err := NewKey[readingStringer]("rs").Set(c, readingStringer{c}); err != nil {
			t.Errorf("Set: %v", err)
		}
		if v, ok := NewKey[panicStringer]("ps").Get(c); !ok || v != (panicStringer{}) {
			t.Errorf("Get = %v, %v", v, ok)
		}
	})
	if l := h.contextLogs("ps"); len(l) != 1 || !strings.Contains(l[0].Value, "no string for you") {
		t.Errorf("logs = %+v", l)
	}
	if l := h.contextLogs("rs"); len(l) != 1 || l[0].Value != "reads unset" {
		t.Errorf("logs = %+v", l)
	}
}

type panicStringer struct{}

func (panicStringer) String() string { panic("no string for you") }

type readingStringer struct{ c *Context }

func (r readingStringer) String() string {
	if _, ok := NewKey[int]("nothing").Get(r.c); ok {
		return "reads set"
	}
	return "reads unset"
}

// ---------------------------------------------------------------------------
// Durable state

// readStateFile parses the state file in dir, failing the test unless it is
// valid JSON in the documented format.
func readStateFile(t testing.TB, dir string) stateFileForTest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, DefaultStateFileName))
	if err != nil {
		t.Fatalf("reading state file: %v", err)
	}
	var f stateFileForTest
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("state file is not valid JSON: %v\n%s", err, data)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(data, &raw)
	for _, field := range []string{"version", "values", "savedAt"} {
		if _, ok := raw[field]; !ok {
			t.Errorf("state file has no %q field: %s", field, data)
		}
	}
	if f.Version != 1 {
		t.Errorf("state file version = %d; want 1", f.Version)
	}
	return f
}

// stateFileForTest mirrors the documented on-disk format independently of
// the implementation's type.
type stateFileForTest struct {
	Version int                        `json:"version"`
	SavedAt time.Time                  `json:"savedAt"`
	Values  map[string]json.RawMessage `json:"values"`
}

// dirNames lists dir's entries.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

type order struct {
	ID    string            `json:"id"`
	Price float64           `json:"price"`
	Qty   int               `json:"qty"`
	Tags  []string          `json:"tags"`
	Meta  map[string]string `json:"meta,omitempty"`
}

func TestDurableStateRestoredByNewWatcher(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	dir := t.TempDir()

	count := NewKey[int]("count")
	ord := NewKey[order]("order")
	book := NewKey[map[string]float64]("book")
	hist := NewKey[[]int]("history")
	name := NewKey[string]("name")
	ptr := NewKey[*point]("ptr")
	untouched := NewKey[[]string]("untouched")

	want := order{ID: "o-1", Price: 101.25, Qty: 3, Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}}
	h1 := startStateHarness(t, Config{StateDir: dir})
	h1.do(t, func(c *Context) {
		for _, err := range []error{
			count.Set(c, 1),
			ord.Set(c, want),
			book.Set(c, map[string]float64{"bid": 99.5, "ask": 100.5}),
			hist.Set(c, []int{1, 2, 3}),
			name.Set(c, "to be deleted"),
			ptr.Set(c, &point{5, 6, "ptr"}),
			untouched.Set(c, []string{"x"}),
		} {
			if err != nil {
				t.Errorf("Set: %v", err)
			}
		}
		_, _ = count.Update(c, func(n int) (int, error) { return n + 41, nil })
		_ = name.Delete(c)
	})
	h1.stop(t)

	f := readStateFile(t, dir)
	if len(f.Values) != 6 || string(f.Values["count"]) != "42" || string(f.Values["history"]) != "[1,2,3]" {
		t.Errorf("state file values = %v", f.Values)
	}
	if _, ok := f.Values["name"]; ok {
		t.Errorf("deleted key is in the file")
	}

	// A new watcher (a restarted process) on the same directory.
	h2 := startStateHarness(t, Config{StateDir: dir})
	h2.do(t, func(c *Context) {
		if v, err := count.Load(c); err != nil || v != 42 {
			t.Errorf("count = %v, %v; want 42", v, err)
		}
		if v, err := ord.Load(c); err != nil || !reflect.DeepEqual(v, want) {
			t.Errorf("order = %+v, %v; want %+v", v, err, want)
		}
		if v, _ := book.Get(c); !reflect.DeepEqual(v, map[string]float64{"bid": 99.5, "ask": 100.5}) {
			t.Errorf("book = %v", v)
		}
		if v, _ := hist.Get(c); !reflect.DeepEqual(v, []int{1, 2, 3}) {
			t.Errorf("history = %v", v)
		}
		if v, ok := ptr.Get(c); !ok || v == nil || *v != (point{5, 6, "ptr"}) {
			t.Errorf("ptr = %v, %v", v, ok)
		}
		if _, err := name.Load(c); !errors.Is(err, ErrNotSet) {
			t.Errorf("deleted key restored: %v", err)
		}
		// Restored values are typed lazily, so a restored value read as a
		// type it does not decode to is a *TypeError (and a fault), and a
		// later read as the right type still works.
		var te *TypeError
		if _, err := NewKey[string]("history").Load(c); !errors.As(err, &te) {
			t.Errorf("history as string: %v; want *TypeError", err)
		}
		if v, _ := hist.Get(c); !reflect.DeepEqual(v, []int{1, 2, 3}) {
			t.Errorf("history after bad read = %v", v)
		}
		// Updating a restored value decodes it first.
		if n, err := count.Update(c, func(n int) (int, error) { return n + 1, nil }); err != nil || n != 43 {
			t.Errorf("Update restored = %v, %v; want 43", n, err)
		}
		_ = hist.Set(c, append([]int{0}, 1, 2, 3))
	})
	if f := h2.faults(); len(f) != 1 || f[0].Key != "history" {
		t.Errorf("faults = %+v; want one for history", f)
	}
	h2.stop(t)

	// Keys nobody read after the restore are kept in the next file too.
	h3 := startStateHarness(t, Config{StateDir: dir})
	h3.do(t, func(c *Context) {
		if v, _ := untouched.Get(c); !reflect.DeepEqual(v, []string{"x"}) {
			t.Errorf("untouched = %v", v)
		}
		if v, _ := count.Get(c); v != 43 {
			t.Errorf("count = %v; want 43", v)
		}
		if v, _ := hist.Get(c); !reflect.DeepEqual(v, []int{0, 1, 2, 3}) {
			t.Errorf("history = %v", v)
		}
	})
}

func TestDurableStateRestartInProcess(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	dir := t.TempDir()
	k := NewKey[int]("k")
	h := startStateHarness(t, Config{StateDir: dir})
	h.do(t, func(c *Context) { _ = k.Set(c, 1) })
	h.stop(t)
	if err := h.w.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	h.do(t, func(c *Context) {
		if v, err := k.Load(c); err != nil || v != 1 {
			t.Errorf("after restart k = %v, %v; want 1", v, err)
		}
		_, _ = k.Update(c, func(n int) (int, error) { return n + 1, nil })
	})
	// The restart did not re-read the file (no restore entries).
	for _, e := range h.contextLogs("k") {
		if e.Op == "restore" {
			t.Errorf("restart restored from disk: %+v", e)
		}
	}
	h.stop(t)
	if got := readStateFile(t, dir).Values["k"]; string(got) != "2" {
		t.Errorf("file k = %s; want 2", got)
	}
}

func TestDurableStateFileIsWrittenAtomically(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	dir := filepath.Join(t.TempDir(), "state", "nested") // created by Start
	h := startStateHarness(t, Config{StateDir: dir})
	k := NewKey[int]("k")
	for i := range 20 {
		h.do(t, func(c *Context) { _ = k.Set(c, i) })
	}
	h.stop(t)
	if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{DefaultStateFileName}) {
		t.Errorf("state dir holds %v; want only %s (no temp files)", names, DefaultStateFileName)
	}
	f := readStateFile(t, dir)
	if string(f.Values["k"]) != "19" {
		t.Errorf("k = %s; want 19", f.Values["k"])
	}
	if f.SavedAt.IsZero() {
		t.Errorf("savedAt is zero")
	}
	fi, err := os.Stat(filepath.Join(dir, DefaultStateFileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("state file mode %v is readable by others", perm)
	}
	if len(h.faults()) != 0 {
		t.Errorf("faults: %+v", h.faults())
	}
}

// Changes are written as they happen, not only when the watcher stops.
func TestDurableStateWrittenWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := startStateHarness(t, Config{StateDir: dir})
		k := NewKey[string]("k")
		h.do(t, func(c *Context) { _ = k.Set(c, "first") })
		synctest.Wait() // the writer has written and gone back to waiting
		if got := readStateFile(t, dir).Values["k"]; string(got) != `"first"` {
			t.Errorf("file k = %s while running; want \"first\"", got)
		}
		h.do(t, func(c *Context) { _ = k.Delete(c) })
		synctest.Wait()
		if f := readStateFile(t, dir); len(f.Values) != 0 {
			t.Errorf("file values = %v after delete; want none", f.Values)
		}
		h.stop(t)
		if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{DefaultStateFileName}) {
			t.Errorf("state dir holds %v", names)
		}
	})
}

// Context state is saved however a session ends, including values the
// cleanup function sets, and a new watcher restores them.
func TestDurableStateSavedInEveryTerminalState(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	last := NewKey[string]("last")
	fromCleanup := NewKey[string]("cleanup")
	for _, end := range []string{"stop", "kill", "crash", "stop-error"} {
		t.Run(end, func(t *testing.T) {
			dir := t.TempDir()
			initial := make(chan struct{})
			w, err := New(Config{DisableAPIServer: true, StateDir: dir}, func(c *Context) error {
				if c.Message() == nil {
					_ = last.Set(c, "initial run")
					close(initial)
					return nil
				}
				_ = last.Set(c, "message run")
				if c.Message().Content == "crash" {
					return Crash("test", nil)
				}
				return Stop("test")
			})
			if err != nil {
				t.Fatal(err)
			}
			w.OnCleanup(func(c *Context, cause error) {
				if err := fromCleanup.Set(c, fmt.Sprintf("%s, cause %v", end, cause != nil)); err != nil {
					t.Errorf("Set in cleanup: %v", err)
				}
			})
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			<-initial
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			wantLast := `"message run"`
			switch end {
			case "stop":
				wantLast = `"initial run"`
				if err := w.Stop(ctx); err != nil {
					t.Fatal(err)
				}
			case "kill":
				wantLast = `"initial run"`
				if err := w.Kill(ctx); err != nil {
					t.Fatal(err)
				}
			default:
				if err := w.Send(ctx, end); err != nil {
					t.Fatal(err)
				}
				select {
				case <-w.Done():
				case <-ctx.Done():
					t.Fatal("watcher did not end")
				}
			}
			wantCleanup := fmt.Sprintf(`"%s, cause %v"`, end, end == "kill" || end == "crash")
			f := readStateFile(t, dir)
			if got := string(f.Values["last"]); got != wantLast {
				t.Errorf("last on disk = %s; want %s", got, wantLast)
			}
			if got := string(f.Values["cleanup"]); got != wantCleanup {
				t.Errorf("cleanup on disk = %s; want %s", got, wantCleanup)
			}
			h := startStateHarness(t, Config{StateDir: dir})
			h.do(t, func(c *Context) {
				if v, _ := fromCleanup.Get(c); `"`+v+`"` != wantCleanup {
					t.Errorf("restored cleanup = %q", v)
				}
			})
		})
	}
}

type badJSON struct{ V int }

func (badJSON) MarshalJSON() ([]byte, error) { return nil, errBadJSON }

var errBadJSON = errors.New("cannot marshal badJSON")

type panicJSON struct{ V int }

func (panicJSON) MarshalJSON() ([]byte, error) { panic("MarshalJSON exploded") }

func TestDurableStateRejectsUnencodable(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	dir := t.TempDir()
	h := startStateHarness(t, Config{StateDir: dir})

	// Each case: a key whose good value is set first, then a bad value that
	// must be rejected by Set and by Update.
	type tc struct {
		name string
		set  func(c *Context) error // sets the good value
		bad  func(c *Context) error // Set with the bad value
		upd  func(c *Context) error // Update to the bad value
		good func(c *Context) bool  // the good value is still there
		disk string                 // the good value's JSON
	}
	cases := []tc{
		{
			name: "chan",
			set:  func(c *Context) error { return NewKey[any]("chan").Set(c, 1) },
			bad:  func(c *Context) error { return NewKey[any]("chan").Set(c, make(chan int)) },
			upd: func(c *Context) error {
				_, err := NewKey[any]("chan").Update(c, func(any) (any, error) { return make(chan int), nil })
				return err
			},
			good: func(c *Context) bool { v, _ := NewKey[any]("chan").Get(c); return v == 1 },
			disk: "1",
		},
		{
			name: "func",
			set:  func(c *Context) error { return NewKey[any]("func").Set(c, "x") },
			bad:  func(c *Context) error { return NewKey[any]("func").Set(c, func() {}) },
			upd: func(c *Context) error {
				_, err := NewKey[any]("func").Update(c, func(any) (any, error) { return func() {}, nil })
				return err
			},
			good: func(c *Context) bool { v, _ := NewKey[any]("func").Get(c); return v == "x" },
			disk: `"x"`,
		},
		{
			name: "marshal-error",
			set:  func(c *Context) error { return NewKey[any]("marshal-error").Set(c, "ok") },
			bad:  func(c *Context) error { return NewKey[any]("marshal-error").Set(c, badJSON{1}) },
			upd: func(c *Context) error {
				_, err := NewKey[any]("marshal-error").Update(c, func(any) (any, error) { return badJSON{2}, nil })
				return err
			},
			good: func(c *Context) bool { v, _ := NewKey[any]("marshal-error").Get(c); return v == "ok" },
			disk: `"ok"`,
		},
		{
			name: "marshal-panic",
			set:  func(c *Context) error { return NewKey[any]("marshal-panic").Set(c, 2.5) },
			bad:  func(c *Context) error { return NewKey[any]("marshal-panic").Set(c, panicJSON{1}) },
			upd: func(c *Context) error {
				_, err := NewKey[any]("marshal-panic").Update(c, func(any) (any, error) { return panicJSON{2}, nil })
				return err
			},
			good: func(c *Context) bool { v, _ := NewKey[any]("marshal-panic").Get(c); return v == 2.5 },
			disk: "2.5",
		},
		{
			name: "nan",
			set:  func(c *Context) error { return NewKey[float64]("nan").Set(c, 0.5) },
			bad:  func(c *Context) error { return NewKey[float64]("nan").Set(c, math.NaN()) },
			upd: func(c *Context) error {
				_, err := NewKey[float64]("nan").Update(c, func(v float64) (float64, error) { return math.Inf(1), nil })
				return err
			},
			good: func(c *Context) bool { v, _ := NewKey[float64]("nan").Get(c); return v == 0.5 },
			disk: "0.5",
		},
		{
			name: "nested-chan",
			set:  func(c *Context) error { return NewKey[map[string]any]("nested-chan").Set(c, map[string]any{"a": 1}) },
			bad: func(c *Context) error {
				return NewKey[map[string]any]("nested-chan").Set(c, map[string]any{"a": make(chan int)})
			},
			upd: func(c *Context) error {
				_, err := NewKey[map[string]any]("nested-chan").Update(c, func(m map[string]any) (map[string]any, error) {
					return map[string]any{"a": func() {}}, nil
				})
				return err
			},
			good: func(c *Context) bool {
				v, _ := NewKey[map[string]any]("nested-chan").Get(c)
				return reflect.DeepEqual(v, map[string]any{"a": 1})
			},
			disk: `{"a":1}`,
		},
	}
	for _, tc := range cases {
		h.do(t, func(c *Context) {
			if err := tc.set(c); err != nil {
				t.Errorf("%s: good Set: %v", tc.name, err)
			}
		})
	}
	h.stop(t) // the good values are on disk
	before, err := os.ReadFile(filepath.Join(dir, DefaultStateFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.w.Start(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		h.do(t, func(c *Context) {
			for op, f := range map[string]func(*Context) error{"Set": tc.bad, "Update": tc.upd} {
				err := f(c)
				if !errors.Is(err, ErrUnencodable) {
					t.Errorf("%s: %s err = %v; want ErrUnencodable", tc.name, op, err)
				} else if !strings.Contains(err.Error(), strconv.Quote(tc.name)) {
					t.Errorf("%s: %s err %q does not name the key", tc.name, op, err)
				}
				if !tc.good(c) {
					t.Errorf("%s: %s replaced the value in memory", tc.name, op)
				}
			}
		})
	}
	// The error from MarshalJSON is kept in the chain.
	h.do(t, func(c *Context) {
		if err := NewKey[badJSON]("x").Set(c, badJSON{}); !errors.Is(err, errBadJSON) || !errors.Is(err, ErrUnencodable) {
			t.Errorf("MarshalJSON error not wrapped: %v", err)
		}
	})
	h.stop(t)
	after, err := os.ReadFile(filepath.Join(dir, DefaultStateFileName))
	if err != nil {
		t.Fatal(err)
	}
	f := readStateFile(t, dir)
	for _, tc := range cases {
		if got := string(f.Values[tc.name]); got != tc.disk {
			t.Errorf("%s on disk = %s; want %s", tc.name, got, tc.disk)
		}
	}
	if len(f.Values) != len(cases) {
		t.Errorf("file values = %v", f.Values)
	}
	// Nothing changed, so the file was not even rewritten.
	if string(before) != string(after) {
		t.Errorf("state file rewritten although nothing changed:\n%s\n%s", before, after)
	}
	for _, tc := range cases {
		for _, e := range h.contextLogs(tc.name) {
			if e.Op != "set" || e.Value != tc.disk {
				t.Errorf("%s: unexpected context log %+v", tc.name, e)
			}
		}
	}
}

// Without a state directory nothing is encoded, so any value is accepted.
func TestNonDurableStateAcceptsAnyValue(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	h := startStateHarness(t, Config{})
	ch := make(chan int)
	h.do(t, func(c *Context) {
		if err := NewKey[chan int]("ch").Set(c, ch); err != nil {
			t.Errorf("Set chan: %v", err)
		}
		if v, _ := NewKey[chan int]("ch").Get(c); v != ch {
			t.Errorf("chan not kept")
		}
		if err := NewKey[panicJSON]("pj").Set(c, panicJSON{3}); err != nil {
			t.Errorf("Set panicJSON: %v", err)
		}
	})
	if h.w.Config().StateDir != "" {
		t.Errorf("StateDir = %q", h.w.Config().StateDir)
	}
}

func TestDurableStateCorruptFileMovedAside(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":         "{not json at all",
		"empty":           "",
		"unknown-version": `{"version":2,"values":{"k":1}}`,
		"no-version":      `{"values":{"k":1}}`,
		"wrong-shape":     `{"version":1,"values":[1,2]}`,
	} {
		t.Run(name, func(t *testing.T) {
			leaktest.Check(t)
			noStateEnv(t)
			dir := t.TempDir()
			path := filepath.Join(dir, DefaultStateFileName)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			h := startStateHarness(t, Config{StateDir: dir})
			k := NewKey[int]("k")
			h.do(t, func(c *Context) {
				if _, err := k.Load(c); !errors.Is(err, ErrNotSet) {
					t.Errorf("k from a corrupt file: %v; want ErrNotSet", err)
				}
				_ = k.Set(c, 7)
			})
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved-aside files: %v; want 1 (dir: %v)", aside, dirNames(t, dir))
			}
			if got, err := os.ReadFile(aside[0]); err != nil || string(got) != content {
				t.Errorf("moved-aside content = %q, %v; want %q", got, err, content)
			}
			f := h.faults()
			if len(f) != 1 || !strings.Contains(f[0].Error, "moved to "+aside[0]) {
				t.Errorf("faults = %+v; want one naming %s", f, aside[0])
			}
			h.stop(t)
			if got := readStateFile(t, dir).Values["k"]; string(got) != "7" {
				t.Errorf("new file k = %s", got)
			}
			// The next start restores the new file and leaves the old one be.
			h2 := startStateHarness(t, Config{StateDir: dir})
			h2.do(t, func(c *Context) {
				if v, _ := k.Get(c); v != 7 {
					t.Errorf("k = %v; want 7", v)
				}
			})
			if f := h2.faults(); len(f) != 0 {
				t.Errorf("faults on clean start: %+v", f)
			}
			if again, _ := filepath.Glob(path + ".corrupt-*"); len(again) != 1 {
				t.Errorf("moved-aside files now %v", again)
			}
		})
	}
}

// A state directory that cannot be created makes Start fail clearly; the
// watcher is left unstarted and can be started once the problem is fixed.
func TestDurableStateUnusableDirFailsStart(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	base := t.TempDir()
	file := filepath.Join(base, "regular-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newStateHarness(t, Config{StateDir: filepath.Join(file, "sub")})
	err := h.w.Start()
	if err == nil {
		h.stop(t)
		t.Fatal("Start succeeded with a state dir under a regular file")
	}
	if !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), "state dir") {
		t.Errorf("Start err = %v; want a state directory error wrapping ENOTDIR", err)
	}
	if st := h.w.State(); st != StateNotRun || h.w.Done() != nil {
		t.Errorf("after failed Start: state %v, Done %v", st, h.w.Done())
	}
	if err := h.w.Send(context.Background(), "x"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Send after failed Start: %v", err)
	}

	// The state file path being a directory is an error too, not a fresh start.
	dir2 := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir2, DefaultStateFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	h2 := newStateHarness(t, Config{StateDir: dir2})
	if err := h2.w.Start(); err == nil {
		h2.stop(t)
		t.Errorf("Start succeeded with a directory as the state file")
	}

	// Fixed: the same watcher starts.
	if err := os.Remove(filepath.Join(dir2, DefaultStateFileName)); err != nil {
		t.Fatal(err)
	}
	if err := h2.w.Start(); err != nil {
		t.Fatalf("Start after fix: %v", err)
	}
	h2.do(t, func(c *Context) { _ = NewKey[int]("k").Set(c, 1) })
	h2.stop(t)
	if got := readStateFile(t, dir2).Values["k"]; string(got) != "1" {
		t.Errorf("k = %s", got)
	}
}

// A directory the program may not write to is refused at Start rather than
// discovered at the first change.
func TestDurableStateReadOnlyDirFailsStart(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write to a read-only directory")
	}
	leaktest.Check(t)
	noStateEnv(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	h := newStateHarness(t, Config{StateDir: dir})
	if err := h.w.Start(); err == nil {
		h.stop(t)
		t.Fatal("Start succeeded with a read-only state dir")
	} else if !errors.Is(err, os.ErrPermission) {
		t.Errorf("Start err = %v; want a permission error", err)
	}
}

// A write that fails while running is a state fault; the value is kept in
// memory and written once the directory is usable again. In a bubble, so
// synctest.Wait tells when the background writer has tried.
func TestDurableStateWriteFailureIsAFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		h := startStateHarness(t, Config{StateDir: dir})
		k := NewKey[int]("k")
		h.do(t, func(c *Context) { _ = k.Set(c, 1) })
		synctest.Wait()
		if got := readStateFile(t, dir).Values["k"]; string(got) != "1" {
			t.Fatalf("k on disk = %s; want 1", got)
		}

		// Replace the directory with a regular file: every write now fails.
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, []byte("not a dir"), 0o600); err != nil {
			t.Fatal(err)
		}
		h.do(t, func(c *Context) {
			if err := k.Set(c, 2); err != nil {
				t.Errorf("Set while the dir is broken: %v (the value is still kept in memory)", err)
			}
		})
		synctest.Wait()
		faults := h.faults()
		if len(faults) != 1 {
			t.Fatalf("faults after a failed write = %+v; want 1", faults)
		}
		h.do(t, func(c *Context) {
			if v, _ := k.Get(c); v != 2 {
				t.Errorf("k = %v; want 2", v)
			}
		})
		if st := h.w.State(); st.Terminal() {
			t.Errorf("state = %v after a failed write", st)
		}
		h.stop(t) // flushes, and fails again
		faults = h.faults()
		if len(faults) != 2 {
			t.Fatalf("faults after Stop = %+v; want 2", faults)
		}
		for _, f := range faults {
			if f.Key != "" || !strings.Contains(f.Error, "saving context state") || !strings.Contains(f.Error, "not a directory") {
				t.Errorf("fault = %+v", f)
			}
		}

		// Repair and restart in process: the unsaved change is written.
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := h.w.Start(); err != nil {
			t.Fatalf("restart: %v", err)
		}
		h.stop(t)
		if got := readStateFile(t, dir).Values["k"]; string(got) != "2" {
			t.Errorf("k on disk = %s; want 2", got)
		}
		if n := len(h.faults()); n != 2 {
			t.Errorf("%d faults; want still 2", n)
		}
	})
}

func TestStateDirFromEnvironment(t *testing.T) {
	leaktest.Check(t)
	dir := t.TempDir()
	t.Setenv(EnvStateDir, dir)
	h := startStateHarness(t, Config{})
	if got := h.w.Config().StateDir; got != dir {
		t.Errorf("Config().StateDir = %q; want %q", got, dir)
	}
	k := NewKey[[]string]("k")
	h.do(t, func(c *Context) {
		_ = k.Set(c, []string{"from", "env"})
		// Durable: unencodable values are rejected.
		if err := NewKey[func()]("f").Set(c, func() {}); !errors.Is(err, ErrUnencodable) {
			t.Errorf("Set func: %v; want ErrUnencodable", err)
		}
	})
	h.stop(t)
	if got := readStateFile(t, dir).Values["k"]; string(got) != `["from","env"]` {
		t.Errorf("k on disk = %s", got)
	}

	// An explicit StateDir wins over the environment.
	other := t.TempDir()
	h2 := startStateHarness(t, Config{StateDir: other})
	if got := h2.w.Config().StateDir; got != other {
		t.Errorf("Config().StateDir = %q; want %q", got, other)
	}
	h2.do(t, func(c *Context) {
		if _, ok := k.Get(c); ok {
			t.Errorf("state from the env dir leaked into the explicit dir")
		}
	})
	h2.stop(t)
	if _, err := os.Stat(filepath.Join(dir, DefaultStateFileName)); err != nil {
		t.Errorf("env dir file: %v", err)
	}
}

// Context.Env values are fixed at New: changing the map passed in has no effect.
func TestContextEnvImmutable(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	env := map[string]string{"MODE": "paper"}
	h := startStateHarness(t, Config{Env: env})
	env["MODE"] = "live"
	env["NEW"] = "x"
	h.do(t, func(c *Context) {
		if v, ok := c.Env("MODE"); !ok || v != "paper" {
			t.Errorf("Env(MODE) = %q, %v; want paper", v, ok)
		}
		if _, ok := c.Env("NEW"); ok {
			t.Errorf("Env(NEW) visible")
		}
	})
	h.w.Config().Env["MODE"] = "changed"
	h.do(t, func(c *Context) {
		if v, _ := c.Env("MODE"); v != "paper" {
			t.Errorf("Env(MODE) = %q after changing Config().Env", v)
		}
	})
}

func TestKeysThroughTheWatcher(t *testing.T) {
	leaktest.Check(t)
	noStateEnv(t)
	dir := t.TempDir()
	n := NewKey[int]("n")
	w, err := New(Config{DisableAPIServer: true, StateDir: dir}, func(c *Context) error {
		_, err := n.Update(c, func(v int) (int, error) { return v * 10, nil })
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Set(w, 4); err != nil { // seeded before the first start
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, ok := n.Get(w); !ok || v != 40 {
		t.Fatalf("read through the watcher: %d %v", v, ok)
	}
}

// forEachDurability runs fn as two subtests: without a state directory and
// with a fresh one.
func forEachDurability(t *testing.T, fn func(t *testing.T, durable bool, cfg Config)) {
	t.Helper()
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			noStateEnv(t)
			cfg := Config{}
			if durable {
				cfg.StateDir = t.TempDir()
			}
			fn(t, durable, cfg)
		})
	}
}
