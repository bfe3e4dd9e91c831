package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

// TestServer runs the managed logic on synctest's fake clock: time.Sleep
// advances time instantly, and synctest.Wait returns once every goroutine
// of the watcher has settled.
func TestServer(t *testing.T) {
	out := captureLog(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := hersh.Config{DisableAPIServer: true, StateDir: dir}

		w := start(t, cfg)
		if got := counterFile(t, dir); got != "0" {
			t.Fatalf("counter.txt holds %q at start, want 0", got)
		}
		time.Sleep(3*time.Second + time.Millisecond) // three ticks, one sensor poll after the first, two events
		synctest.Wait()
		if got := counterFile(t, dir); got != "3" {
			t.Fatalf("counter.txt holds %q after 3 s, want 3", got)
		}

		send(t, w, "reset")
		if got := counterFile(t, dir); got != "0" {
			t.Fatalf("counter.txt holds %q after reset, want 0", got)
		}
		send(t, w, "status")
		send(t, w, "help")
		send(t, w, "hello")
		time.Sleep(2 * time.Second) // two more ticks
		synctest.Wait()
		if got := counterFile(t, dir); got != "2" {
			t.Fatalf("counter.txt holds %q 2 s after reset, want 2", got)
		}

		checkAPI(t, w)
		stop(t, w)

		for _, line := range []string{
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
		} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("log lacks %q:\n%s", line, out)
			}
		}
		// Heartbeats are skip-signal: they never cause a run of their own,
		// but later runs see them.
		if strings.Contains(out.String(), "event #2") {
			t.Errorf("a heartbeat caused a run:\n%s", out)
		}
		if !strings.Contains(out.String(), "last event {Seq:2 Kind:heartbeat}") {
			t.Errorf("status did not see the heartbeat:\n%s", out)
		}

		// A second watcher on the same directory resumes from 2.
		w = start(t, cfg)
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		stop(t, w)
		if got := counterFile(t, dir); got != "3" {
			t.Fatalf("after restart counter.txt holds %q, want 3", got)
		}
		if !strings.Contains(out.String(), "counter starts at 2") {
			t.Errorf("restarted watcher did not restore the counter:\n%s", out)
		}
	})
}

// checkAPI asks each WatcherAPI view through the watcher's handler.
func checkAPI(t *testing.T, w *hersh.Watcher) {
	t.Helper()
	var watching struct {
		WatchedVars []string          `json:"watchedVars"`
		Details     []hersh.WatchInfo `json:"details"`
	}
	get(t, w, "/watcher/watching", &watching)
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
	get(t, w, "/watcher/memoCache", &memo)
	if th := memo.Entries["thresholds"]; th.High != 24 || th.Labels["ok"] == "" {
		t.Errorf("/watcher/memoCache: thresholds are %+v", memo.Entries)
	}

	var vars struct {
		Variables struct {
			Sensor Reading    `json:"sensor"`
			Events Event      `json:"events"`
			Tick   hersh.Tick `json:"tick"`
		} `json:"variables"`
	}
	get(t, w, "/watcher/varState", &vars)
	v := vars.Variables
	// At 5 s: sensor polls at 0, 2, 4 s; events at 1.5, 3, 4.5 s (the last
	// a job); the tick counted five seconds.
	if v.Sensor.Seq != 3 || v.Events.Seq != 3 || v.Tick.Count != 5 {
		t.Errorf("/watcher/varState: %+v", v)
	}

	var logs struct { // the parts of hersh.Logs checked here
		EffectResults []struct {
			Trigger string `json:"trigger"`
			Message string `json:"message"`
			Success bool   `json:"success"`
		} `json:"effectResults"`
		ContextLogs []hersh.ContextLog `json:"contextLogs"`
	}
	get(t, w, "/watcher/logs", &logs)
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

func get(t *testing.T, w *hersh.Watcher, path string, into any) {
	t.Helper()
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, rec.Body)
	}
}

func start(t *testing.T, cfg hersh.Config) *hersh.Watcher {
	t.Helper()
	w, err := newServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	// Should the test fail early, end the watcher's goroutines before the
	// bubble ends (a no-op once the test has stopped it).
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	synctest.Wait() // the initial run is done
	return w
}

func send(t *testing.T, w *hersh.Watcher, msg string) {
	t.Helper()
	if err := w.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
}

func stop(t *testing.T, w *hersh.Watcher) {
	t.Helper()
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Err(); err != nil {
		t.Fatalf("watcher ended with %v", err)
	}
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

// captureLog sends the standard logger's output to a buffer for the test.
func captureLog(t *testing.T) *lockedBuffer {
	b := &lockedBuffer{}
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(b)
	log.SetFlags(0)
	t.Cleanup(func() { log.SetOutput(prev); log.SetFlags(flags) })
	return b
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
