package hershtest_test

import (
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

// Tests of every helper: first what it does for a well-behaved program,
// then, through fakeTB, what it says when the program (or the test)
// misbehaves.

func idle(*hersh.Context) error { return nil }

// exact is a recovery policy whose delays are exact: 1s, 2s, 4s, ...
var exact = hersh.RecoveryConfig{Base: time.Second, MaxFailures: 3, Jitter: hersh.NoJitter}

func TestStartRunsTheFirstRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hershtest.Start(t, hersh.Config{}, idle)
		if got := hershtest.Triggers(h.Runs()); !slices.Equal(got, []string{"start"}) {
			t.Fatalf("runs after Start: %q", got)
		}
		h.WantState(hersh.StateReady)
		if !h.W.Config().DisableAPIServer {
			t.Error("Start left the network API server on")
		}
	})
}

func TestStartOutsideABubble(t *testing.T) {
	f := runFake(func(tb testing.TB) { hershtest.Start(tb, hersh.Config{}, idle) })
	f.wantFatal(t, "hershtest.Start", "not inside a synctest bubble")
	f = runFake(func(tb testing.TB) { hershtest.StartWatcher(tb, nil) })
	f.wantFatal(t, "hershtest.StartWatcher", "not inside a synctest bubble")
}

func TestStartRefusesWhatCannotRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) { hershtest.Start(tb, hersh.Config{RunTimeout: -time.Second}, idle) })
		f.wantFatal(t, "RunTimeout must be positive")

		f = runFake(func(tb testing.TB) { hershtest.Start(tb, hersh.Config{}, nil) })
		f.wantFatal(t, hersh.ErrNoManaged.Error())

		f = runFake(func(tb testing.TB) { hershtest.StartWatcher(tb, nil) })
		f.wantFatal(t, "nil watcher")

		// A listener never blocks durably: fake time would stand still.
		w, err := hersh.New(hersh.Config{APIAddr: "127.0.0.1:0"}, idle)
		if err != nil {
			t.Fatal(err)
		}
		f = runFake(func(tb testing.TB) { hershtest.StartWatcher(tb, w) })
		f.wantFatal(t, "127.0.0.1:0", "DisableAPIServer")
		if w.State() != hersh.StateNotRun {
			t.Errorf("the refused watcher was started: %s", w.State())
		}
	})
}

func TestStartWatcherTwiceAndAfterACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
			if c.Message() != nil {
				return hersh.Crash("asked to", nil)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		h := hershtest.StartWatcher(t, w)
		f := runFake(func(tb testing.TB) { hershtest.StartWatcher(tb, w) })
		f.wantFatal(t, hersh.ErrAlreadyRunning.Error())

		h.Send("crash")
		f = runFake(func(tb testing.TB) { hershtest.StartWatcher(tb, w) })
		f.wantFatal(t, hersh.ErrTerminated.Error())
	})
}

func TestSendReturnsTheMessagesRunInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			if m := c.Message(); m != nil && m.Content == "bad" {
				return errors.New("bad message")
			}
			return nil
		})
		r := h.Send("hello")
		if !r.Success || r.Trigger != hersh.TriggerMessage || r.Message != "hello" || r.StateAfter != hersh.StateReady {
			t.Errorf("Send(hello) = %+v", r)
		}
		r = h.Send("bad")
		if r.Success || r.Error != "bad message" || r.StateAfter != hersh.StateWaitRecover {
			t.Errorf("Send(bad) = %+v", r)
		}
		if got, want := hershtest.Triggers(h.Runs()), []string{"start", "message:hello", "message:bad"}; !slices.Equal(got, want) {
			t.Errorf("runs %q, want %q", got, want)
		}
	})
}

func TestSendAfterQueuedMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			if m := c.Message(); m != nil && m.Content == "slow" {
				<-release
			}
			return nil
		})
		h.Queue("slow")
		h.Queue("same")
		h.WantState(hersh.StateRunning)
		close(release)
		r := h.Send("same") // two messages of that content: Send returns its own
		if r.MessageID == 0 {
			t.Fatalf("Send returned %+v", r)
		}
		runs := h.Runs()
		if got, want := hershtest.Triggers(runs), []string{"start", "message:slow", "message:same", "message:same"}; !slices.Equal(got, want) {
			t.Fatalf("runs %q, want %q", got, want)
		}
		if r.ID != runs[3].ID {
			t.Errorf("Send returned run %d, the earlier message's; want run %d", r.RunID, runs[3].RunID)
		}
	})
}

func TestSendDuringABackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{Recovery: exact}, func(*hersh.Context) error {
				return errors.New("exchange down")
			})
			h.Send("status")
		})
		f.wantFatal(t, `Send("status")`, "has not run", "waiting out a backoff",
			"failure 1 of 3, retry in 1s: exchange down", "Advance")
	})
}

func TestQueueThenAdvancePastTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fails := 1
		h := hershtest.Start(t, hersh.Config{Recovery: exact}, func(c *hersh.Context) error {
			if fails > 0 {
				fails--
				return errors.New("exchange down")
			}
			return nil
		})
		h.WantState(hersh.StateWaitRecover)
		h.Queue("status")
		if runs := h.Advance(999 * time.Millisecond); len(runs) != 0 {
			t.Fatalf("runs before the backoff ended: %q", hershtest.Triggers(runs))
		}
		runs := h.Advance(time.Millisecond)
		if got, want := hershtest.Triggers(runs), []string{"recovery", "message:status"}; !slices.Equal(got, want) {
			t.Fatalf("runs %q, want %q", got, want)
		}
		h.WantState(hersh.StateReady)
	})
}

func TestSendWhileARunIsBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				if c.Message() != nil {
					waitForRelease(release)
				}
				return nil
			})
			tb.Cleanup(func() { close(release) }) // runs before the kit's: the watcher can stop
			h.Send("first")
		})
		f.wantFatal(t, `Send("first")`, "blocked", "hershtest_test.waitForRelease")
		if len(f.errors) > 0 {
			t.Errorf("errors: %q", f.errors)
		}
	})
}

// waitForRelease is where the blocked run of the test above waits: the
// kit's message must show it.
func waitForRelease(ch chan struct{}) { <-ch }

func TestSendWhenTheQueueIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{SignalCapacity: 1}, func(c *hersh.Context) error {
				if c.Message() != nil {
					<-release
				}
				return nil
			})
			tb.Cleanup(func() { close(release) })
			h.Queue("running")
			h.Queue("waiting")
			h.Send("one too many")
		})
		f.wantFatal(t, `Send("one too many")`, hersh.ErrQueueFull.Error())
		if len(f.errors) > 0 {
			t.Errorf("errors: %q", f.errors)
		}
	})
}

func TestSendAfterTheWatcherEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				if c.Message() != nil {
					return hersh.Crash("lost the keys", nil)
				}
				return nil
			})
			if r := h.Send("quit"); r.StateAfter != hersh.StateCrashed {
				tb.Errorf("the crashing run ended in %s", r.StateAfter)
			}
			h.Send("hello")
		})
		f.wantFatal(t, `Send("hello")`, hersh.ErrNotRunning.Error(), "ended with: hersh: crash: lost the keys")
		if len(f.errors) > 0 {
			t.Errorf("errors: %q", f.errors)
		}
	})
}

func TestQueueFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, idle)
			h.Stop()
			h.Queue("late")
		})
		f.wantFatal(t, `Queue("late")`, hersh.ErrNotRunning.Error())
	})
}

func TestAdvanceFiresTicksDueInTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			hersh.WatchTick(c, "tick", time.Second)
			return nil
		})
		runs := h.Advance(3 * time.Second) // ticks at 1s, 2s and exactly 3s
		if got, want := hershtest.Triggers(runs), []string{"vars:tick", "vars:tick", "vars:tick"}; !slices.Equal(got, want) {
			t.Fatalf("runs %q, want %q", got, want)
		}
		if tick, _ := hershtest.Var[hersh.Tick](h, "tick"); tick.Count != 3 {
			t.Errorf("tick count %d, want 3", tick.Count)
		}
		if runs := h.Advance(0); len(runs) != 0 {
			t.Errorf("Advance(0) ran %q", hershtest.Triggers(runs))
		}
		if runs := h.Advance(999 * time.Millisecond); len(runs) != 0 {
			t.Errorf("a tick fired early: %q", hershtest.Triggers(runs))
		}
	})
}

func TestAdvanceRefusesToGoBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, idle)
			h.Advance(-time.Second)
		})
		f.wantFatal(t, "Advance(-1s)", "cannot go back")
	})
}

func TestFeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prices := make(chan float64)
		limits := make(chan hersh.FlowValue[int])
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			hersh.WatchFlow(c, "price", prices)
			hersh.WatchFlowValues(c, "limit", limits)
			return nil
		})
		runs := hershtest.Feed(h, prices, 101.5)
		if got, want := hershtest.Triggers(runs), []string{"vars:price"}; !slices.Equal(got, want) {
			t.Errorf("Feed(price) ran %q, want %q", got, want)
		}
		if p, ok := hershtest.Var[float64](h, "price"); !ok || p != 101.5 {
			t.Errorf("price = %v, %v", p, ok)
		}
		if runs := hershtest.Feed(h, limits, hersh.FlowValue[int]{Value: 7, SkipSignal: true}); len(runs) != 0 {
			t.Errorf("a skip-signal value ran %q", hershtest.Triggers(runs))
		}
		if l, ok := hershtest.Var[int](h, "limit"); !ok || l != 7 {
			t.Errorf("limit = %v, %v; want the stored skip-signal value", l, ok)
		}
	})
}

func TestFeedNobodyReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			name string
			ch   chan int
			want []string
		}{
			{"unbuffered", make(chan int), []string{"Feed(1)", "nothing received the value"}},
			{"buffered", make(chan int, 1), []string{"Feed(1)", "1 value(s) stay in the channel's buffer"}},
			{"closed", func() chan int { c := make(chan int); close(c); return c }(), []string{"Feed(1)", "closed"}},
			{"nil", nil, []string{"Feed(1)", "nil channel"}},
		} {
			f := runFake(func(tb testing.TB) {
				h := hershtest.Start(tb, hersh.Config{}, idle) // no WatchFlow reads tc.ch
				hershtest.Feed(h, tc.ch, 1)
			})
			f.wantFatal(t, tc.want...)
		}
	})
}

func TestValueFeedsAWatchCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var price hershtest.Value[float64]
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			hersh.WatchCall(c, "price", time.Minute, price.Poll)
			return nil
		})
		if _, ok := hershtest.Var[float64](h, "price"); ok || price.Polls() != 1 {
			t.Fatalf("an unset Value reported a value; polls %d", price.Polls())
		}
		price.Set(100)
		if runs := h.Advance(time.Minute); !slices.Equal(hershtest.Triggers(runs), []string{"vars:price"}) {
			t.Fatalf("after Set: runs %q", hershtest.Triggers(runs))
		}
		if runs := h.Advance(time.Minute); len(runs) != 0 {
			t.Fatalf("an unchanged value ran %q", hershtest.Triggers(runs))
		}
		price.Set(100) // the same value, set again: a new update
		if runs := h.Advance(time.Minute); len(runs) != 1 {
			t.Fatalf("a second Set ran %q", hershtest.Triggers(runs))
		}

		price.Fail(errors.New("exchange unreachable"))
		h.Advance(2 * time.Minute)
		if p, _ := hershtest.Var[float64](h, "price"); p != 100 {
			t.Errorf("price after failed polls = %v, want the last good 100", p)
		}
		l, _ := h.W.Logs("watch_error", 0)
		if len(l.WatchErrorLogs) != 2 || l.WatchErrorLogs[0].Error != "exchange unreachable" {
			t.Errorf("watch errors %+v, want two failed polls", l.WatchErrorLogs)
		}
		price.Set(101)
		if runs := h.Advance(time.Minute); len(runs) != 1 {
			t.Errorf("Set after Fail ran %q", hershtest.Triggers(runs))
		}
		if price.Polls() != 7 {
			t.Errorf("polls = %d, want 7 (one at registration, one a minute for 6 minutes)", price.Polls())
		}
	})
}

func TestVarAndMemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			hersh.WatchTick(c, "tick", time.Second)
			_, err := hersh.Memo(c, "limits", func() ([]int, error) { return []int{1, 2}, nil })
			return err
		})
		if m, ok := hershtest.Memo[[]int](h, "limits"); !ok || !slices.Equal(m, []int{1, 2}) {
			t.Errorf("Memo(limits) = %v, %v", m, ok)
		}
		if _, ok := hershtest.Memo[int](h, "missing"); ok {
			t.Error("Memo(missing) reported a value")
		}
		if _, ok := hershtest.Var[hersh.Tick](h, "tick"); !ok {
			t.Error("Var(tick) has no value")
		}

		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				hersh.WatchTick(c, "tick", time.Second)
				return nil
			})
			if _, ok := hershtest.Var[int](h, "tick"); ok {
				tb.Errorf("a Tick read as an int")
			}
		})
		f.wantError(t, `Var("tick") holds a hersh.Tick, not a int`)
		f = runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				_, err := hersh.Memo(c, "limits", func() (string, error) { return "x", nil })
				return err
			})
			hershtest.Memo[[]int](h, "limits")
		})
		f.wantError(t, `Memo("limits") holds a string, not a []int`)
	})
}

func TestAPI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hershtest.Start(t, hersh.Config{}, idle)
		if rec := h.API("POST", "/watcher/message", `{"content":"hi"}`); rec.Code != 200 {
			t.Fatalf("POST message: %d %s", rec.Code, rec.Body)
		}
		// The POSTed message has run by the time API returns.
		var status struct {
			State string `json:"state"`
			Runs  uint64 `json:"runs"`
		}
		h.GetJSON("/watcher/status", &status)
		if status.State != "Ready" || status.Runs != 2 {
			t.Errorf("status %+v, want Ready after 2 runs", status)
		}
		if rec := h.API("POST", "/watcher/message", `{}`); rec.Code != 400 {
			t.Errorf("empty message: %d", rec.Code)
		}
	})
}

func TestAPIFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			hershtest.Start(tb, hersh.Config{}, idle).GetJSON("/watcher/nope", new(any))
		})
		f.wantFatal(t, "GET /watcher/nope: 404", "no such route")
		f = runFake(func(tb testing.TB) {
			var wrong struct{ State int }
			hershtest.Start(tb, hersh.Config{}, idle).GetJSON("/watcher/status", &wrong)
		})
		f.wantFatal(t, "GET /watcher/status: decoding", "cannot unmarshal")
		f = runFake(func(tb testing.TB) {
			hershtest.Start(tb, hersh.Config{}, idle).API("BAD METHOD", "/watcher/status", "")
		})
		f.wantFatal(t, "API(BAD METHOD /watcher/status)", "invalid method")
	})
}

func TestWantState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{Recovery: exact}, func(c *hersh.Context) error {
				if c.Message() != nil {
					return errors.New("no such order")
				}
				return nil
			})
			h.Send("cancel 7")
			h.WantState(hersh.StateReady)
		})
		f.wantError(t, "watcher is WaitRecover, want Ready", "run 1 (start): ok", "run 2 (message:cancel 7): error: no such order, then WaitRecover")

		f = runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				return hersh.Crash("bad config", errors.New("no API key"))
			})
			h.WantState(hersh.StateStopped)
		})
		f.wantError(t, "watcher is Crashed, want Stopped", "ended with: hersh: crash: bad config: no API key")
	})
}

func TestStopAndKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var causes []string
		mk := func() *hersh.Watcher {
			w, err := hersh.New(hersh.Config{DisableAPIServer: true}, idle)
			if err != nil {
				t.Fatal(err)
			}
			w.OnCleanup(func(_ *hersh.Context, cause error) { causes = append(causes, fmt.Sprint(cause)) })
			return w
		}
		h := hershtest.StartWatcher(t, mk())
		h.Stop()
		h.WantState(hersh.StateStopped)
		h.Stop() // again: nothing to do
		h = hershtest.StartWatcher(t, mk())
		h.Kill()
		h.WantState(hersh.StateKilled)
		if want := []string{"<nil>", "hersh: kill: killed by request"}; !slices.Equal(causes, want) {
			t.Errorf("cleanup causes %q, want %q (cleanup must have run when Stop and Kill return)", causes, want)
		}
	})
}

func TestStopAfterTheWatcherEndedOtherwise(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{Recovery: exact}, func(*hersh.Context) error {
				return errors.New("exchange down")
			})
			h.Advance(time.Second + 2*time.Second) // two more failures: the third crashes
			h.Stop()
		})
		f.wantError(t, "Stop: the watcher had already ended as Crashed", "3 consecutive failures", "run 3 (recovery): error: exchange down")
		f = runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				if c.Message() != nil {
					return hersh.Stop("done")
				}
				return nil
			})
			h.Send("quit")
			h.Kill()
		})
		f.wantError(t, "Kill: the watcher had already ended as Stopped")
	})
}

func TestStopARunThatIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{RunTimeout: time.Minute}, func(c *hersh.Context) error {
				if c.Message() != nil {
					waitForRelease(release)
				}
				return nil
			})
			tb.Cleanup(func() { close(release) })
			h.Queue("hang")
			h.Stop()
		})
		f.wantFatal(t, "Stop: hersh: session did not end in time", "waited 1m10s of fake time", "hershtest_test.waitForRelease")
		if len(f.errors) > 0 {
			t.Errorf("errors: %q", f.errors)
		}
	})
}

func TestStopWaitsForARunOnTheFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			if c.Message() != nil {
				time.Sleep(5 * time.Second) // a slow call to an exchange
			}
			return nil
		})
		h.Queue("slow")
		start := time.Now()
		h.Stop()
		// Fake time: the clock reads exactly what passed in the bubble.
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("Stop returned after %s of fake time, want the 5s the run took", d)
		}
		if got := hershtest.Triggers(h.Runs()); !slices.Equal(got, []string{"start", "message:slow"}) {
			t.Errorf("runs %q", got)
		}
	})
}

var visits = hersh.NewKey[int]("visits")

func TestRestartKeepsStateAndStartsHooksAfresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		computed := 0
		h := hershtest.Start(t, hersh.Config{}, func(c *hersh.Context) error {
			if _, err := hersh.Memo(c, "m", func() (int, error) { computed++; return computed, nil }); err != nil {
				return err
			}
			_, err := visits.Update(c, func(n int) (int, error) { return n + 1, nil })
			return err
		})
		h.Send("visit")
		h.Restart()
		if n, _ := visits.Get(h.W); n != 3 {
			t.Errorf("visits after restart = %d, want 3 (state kept)", n)
		}
		if m, _ := hershtest.Memo[int](h, "m"); m != 2 {
			t.Errorf("memo after restart = %d, want 2 (computed afresh)", m)
		}
		if got, want := hershtest.Triggers(h.Runs()), []string{"start", "message:visit", "start"}; !slices.Equal(got, want) {
			t.Errorf("runs %q, want %q", got, want)
		}
	})
}

func TestRestartAfterACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				return hersh.Crash("corrupt ledger", nil)
			})
			h.Restart()
		})
		f.wantError(t, "Stop: the watcher had already ended as Crashed", "corrupt ledger")
	})
}

func TestCleanupStopsAWatcherLeftRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h *hershtest.Watcher
		cleaned := false
		f := runFake(func(tb testing.TB) {
			w, err := hersh.New(hersh.Config{DisableAPIServer: true}, func(c *hersh.Context) error {
				hersh.WatchTick(c, "tick", time.Second)
				return nil
			})
			if err != nil {
				tb.Fatalf("%v", err)
			}
			w.OnCleanup(func(*hersh.Context, error) { cleaned = true })
			h = hershtest.StartWatcher(tb, w)
		})
		f.wantPass(t)
		if h.W.State() != hersh.StateStopped || !cleaned {
			t.Errorf("after the test: %s, cleanup ran %v", h.W.State(), cleaned)
		}
	})
}

func TestCleanupReportsLeakedGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				if c.Trigger().Kind == hersh.TriggerStart {
					go forgottenWorker(release) // ignores the watcher's end
				}
				return nil
			})
			h.Stop()
		})
		close(release) // let the blocked goroutine end, so the bubble can
		synctest.Wait()
		f.wantError(t, "1 goroutine(s) started while the watcher ran are still running", "hershtest_test.forgottenWorker")
	})
}

func forgottenWorker(release chan struct{}) { <-release }

// Two watchers at once: the second one's cleanup runs first, while the
// first still runs a watch it registered after the second started. That
// watch is no leak.
func TestCleanupWithTwoWatchersRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			first := hershtest.Start(tb, hersh.Config{}, func(c *hersh.Context) error {
				if c.Message() != nil {
					hersh.WatchTick(c, "late", time.Second)
				}
				return nil
			})
			hershtest.Start(tb, hersh.Config{}, idle)
			first.Send("register a watch now")
		})
		f.wantPass(t)
	})
}

func TestCleanupLeavesTheTestsOwnGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := runFake(func(tb testing.TB) {
			h := hershtest.Start(tb, hersh.Config{}, idle)
			go forgottenWorker(release) // the test's own: its business
			h.Stop()
		})
		close(release) // let the blocked goroutine end, so the bubble can
		synctest.Wait()
		f.wantPass(t)
	})
}

// TestTriggersOfNoRuns: ExampleTriggers shows the form; no runs give an
// empty list, not nil, so a comparison prints [] rather than nil.
func TestTriggersOfNoRuns(t *testing.T) {
	if got := hershtest.Triggers(nil); got == nil || len(got) != 0 {
		t.Errorf("Triggers(nil) = %#v, want empty", got)
	}
}

func TestCaptureLog(t *testing.T) {
	prevOut, prevFlags := log.Writer(), log.Flags()
	f := runFake(func(tb testing.TB) {
		l := hershtest.CaptureLog(tb)
		log.Printf("portfolio: cash $%d", 100)
		if l.String() != "portfolio: cash $100\n" {
			tb.Errorf("captured %q", l.String())
		}
		l.Want("cash $100", "trading paused", "rebalanced")
	})
	f.wantError(t, `the log lacks ["trading paused" "rebalanced"]`, "portfolio: cash $100")
	if log.Writer() != prevOut || log.Flags() != prevFlags {
		t.Error("CaptureLog did not restore the logger at the end of the test")
	}
}

// TestKitNamesItsHelpersInMessages guards the prefix users grep for.
func TestKitNamesItsHelpersInMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := runFake(func(tb testing.TB) {
			hershtest.Start(tb, hersh.Config{}, idle).Send("x")
			hershtest.Start(tb, hersh.Config{}, idle).WantState(hersh.StateCrashed)
		})
		f.wantError(t, "hershtest: ")
		if !strings.HasPrefix(f.errors[0], "hershtest: ") {
			t.Errorf("message %q does not start with the kit's name", f.errors[0])
		}
	})
}
