package main

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

// TestServer runs the server on fake time (hershtest, in a synctest
// bubble): seconds pass instantly, and every tick, poll, event and message
// has run by the time the call that caused it returns.
func TestServer(t *testing.T) {
	out := hershtest.CaptureLog(t)
	synctest.Test(t, func(t *testing.T) {
		cfg := hersh.Config{DisableAPIServer: true, StateDir: t.TempDir()}

		w := start(t, cfg)
		if got := counterFile(t, cfg.StateDir); got != "0" {
			t.Fatalf("counter.txt holds %q at start, want 0", got)
		}
		// Three ticks, a sensor poll at 2 s, events at 1.5 s (a job) and 3 s
		// (a heartbeat: stored, no run of its own). Changes due at the same
		// instant may share a run, so the runs are counted per variable.
		changed := map[string]int{}
		for _, r := range w.Advance(3 * time.Second) {
			for _, v := range r.Vars {
				changed[v]++
			}
		}
		if want := map[string]int{"tick": 3, "sensor": 1, "events": 1}; !maps.Equal(changed, want) {
			t.Errorf("runs in three seconds, per changed variable: %v, want %v", changed, want)
		}
		if got := counterFile(t, cfg.StateDir); got != "3" {
			t.Fatalf("counter.txt holds %q after 3 s, want 3", got)
		}

		w.Send("reset")
		if got := counterFile(t, cfg.StateDir); got != "0" {
			t.Fatalf("counter.txt holds %q after reset, want 0", got)
		}
		w.Send("status")
		w.Send("help")
		w.Send("hello")
		w.Advance(2 * time.Second) // two more ticks
		if got := counterFile(t, cfg.StateDir); got != "2" {
			t.Fatalf("counter.txt holds %q 2 s after reset, want 2", got)
		}

		checkAPI(t, w)
		w.Stop()

		out.Want(
			"counter starts at 0",
			"computing thresholds",
			"sensor #1: 21.0°C, ok (in range)",
			"sensor #2: 22.5°C",
			"event #1: job",
			"event #3: job",
			"reset: counter is 0",
			"status: counter is 0",
			"help: messages are status, reset and help",
			`unknown message "hello"`,
			"cleanup: session ended (cause: <nil>), counter 2 saved",
		)
		// Heartbeats are skip-signal: they never cause a run of their own,
		// but later runs see them.
		if strings.Contains(out.String(), "event #2") {
			t.Errorf("a heartbeat caused a run:\n%s", out)
		}
		out.Want("last event {Seq:2 Kind:heartbeat}")

		// A second watcher on the same directory resumes from 2.
		w = start(t, cfg)
		w.Advance(time.Second)
		w.Stop()
		if got := counterFile(t, cfg.StateDir); got != "3" {
			t.Fatalf("after restart counter.txt holds %q, want 3", got)
		}
		out.Want("counter starts at 2")
	})
}

// checkAPI asks each WatcherAPI view through the watcher's handler, and
// reads the same memo and variables directly.
func checkAPI(t *testing.T, w *hershtest.Watcher) {
	t.Helper()
	var watching struct {
		WatchedVars []string          `json:"watchedVars"`
		Details     []hersh.WatchInfo `json:"details"`
	}
	w.GetJSON("/watcher/watching", &watching)
	kinds := map[string]string{}
	for _, d := range watching.Details {
		kinds[d.Name] = d.Kind
		if !d.HasValue {
			t.Errorf("watch %q has no value", d.Name)
		}
	}
	want := map[string]string{"sensor": "WatchCall", "events": "WatchFlow", "tick": "WatchTick"}
	for name, kind := range want {
		if kinds[name] != kind {
			t.Errorf("/watcher/watching: %q is %q, want %q (%+v)", name, kinds[name], kind, watching)
		}
	}

	var memo struct {
		Entries map[string]Thresholds `json:"entries"`
	}
	w.GetJSON("/watcher/memoCache", &memo)
	if th := memo.Entries["thresholds"]; th.High != 24 || th.Labels["ok"] == "" {
		t.Errorf("/watcher/memoCache: thresholds are %+v", memo.Entries)
	}
	if th, _ := hershtest.Memo[Thresholds](w, "thresholds"); th.Low != 18 {
		t.Errorf("memo thresholds are %+v", th)
	}

	var vars struct {
		Variables struct {
			Sensor Reading    `json:"sensor"`
			Events Event      `json:"events"`
			Tick   hersh.Tick `json:"tick"`
		} `json:"variables"`
	}
	w.GetJSON("/watcher/varState", &vars)
	v := vars.Variables
	// At 5 s: sensor polls at 0, 2, 4 s; events at 1.5, 3, 4.5 s (the last
	// a job); the tick counted five seconds.
	if v.Sensor.Seq != 3 || v.Events.Seq != 3 || v.Tick.Count != 5 {
		t.Errorf("/watcher/varState: %+v", v)
	}
	if r, _ := hershtest.Var[Reading](w, "sensor"); r != v.Sensor {
		t.Errorf("sensor is %+v directly, %+v through the API", r, v.Sensor)
	}

	var logs struct { // the parts of hersh.Logs checked here
		EffectResults []struct {
			Trigger string `json:"trigger"`
			Message string `json:"message"`
			Success bool   `json:"success"`
		} `json:"effectResults"`
		ContextLogs []hersh.ContextLog `json:"contextLogs"`
	}
	w.GetJSON("/watcher/logs", &logs)
	if len(logs.EffectResults) == 0 || len(logs.ContextLogs) == 0 {
		t.Fatalf("/watcher/logs lacks effect results or context logs: %+v", logs)
	}
	var sawMessage, sawCounter bool
	for _, r := range logs.EffectResults {
		sawMessage = sawMessage || (r.Trigger == "message" && r.Message == "reset" && r.Success)
	}
	for _, l := range logs.ContextLogs {
		sawCounter = sawCounter || l.Key == "counter"
	}
	if !sawMessage || !sawCounter {
		t.Errorf("/watcher/logs: reset run %v, counter change %v", sawMessage, sawCounter)
	}
}

// start builds the server as main does and starts it under the kit.
func start(t *testing.T, cfg hersh.Config) *hershtest.Watcher {
	t.Helper()
	w, err := newServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return hershtest.StartWatcher(t, w)
}

// counterFile returns the content of counter.txt, trimmed.
func counterFile(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "counter.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
