package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

// TestCounter runs the counter on fake time (hershtest, in a synctest
// bubble): seconds pass instantly, and every tick and message has run by
// the time the call that caused it returns.
func TestCounter(t *testing.T) {
	out := hershtest.CaptureLog(t)
	synctest.Test(t, func(t *testing.T) {
		cfg := hersh.Config{DisableAPIServer: true, StateDir: t.TempDir()}

		w := start(t, cfg, 1)
		runs := w.Advance(3 * time.Second)
		if got, want := hershtest.Triggers(runs), []string{"vars:tick", "vars:tick", "vars:tick"}; !slices.Equal(got, want) {
			t.Fatalf("three seconds ran %q, want %q", got, want)
		}
		w.Send("reset")
		w.Send("status")
		w.Send("hello")
		w.Advance(2 * time.Second)
		w.Stop()
		if got, want := counts(t, cfg.StateDir), []int{1, 2, 3, 0, 1, 2}; !slices.Equal(got, want) {
			t.Fatalf("counter.log holds %v, want %v", got, want)
		}
		out.Want("status: counter is 0", `unknown message "hello"`)

		// A second watcher on the same directory resumes from 2.
		w = start(t, cfg, 1)
		w.Advance(time.Second)
		w.Stop()
		if got, want := counts(t, cfg.StateDir), []int{1, 2, 3, 0, 1, 2, 3}; !slices.Equal(got, want) {
			t.Fatalf("after restart counter.log holds %v, want %v", got, want)
		}
		out.Want("counter starts at 2")
	})
}

// TestCounterStep checks that each tick adds the step, and that a reset
// starts counting from 0 again in the same steps.
func TestCounterStep(t *testing.T) {
	hershtest.CaptureLog(t)
	synctest.Test(t, func(t *testing.T) {
		cfg := hersh.Config{DisableAPIServer: true, StateDir: t.TempDir()}

		w := start(t, cfg, 10)
		w.Advance(2 * time.Second)
		w.Send("reset")
		w.Advance(time.Second)
		w.Stop()
		if got, want := counts(t, cfg.StateDir), []int{10, 20, 0, 10}; !slices.Equal(got, want) {
			t.Fatalf("counter.log holds %v, want %v", got, want)
		}
	})
}

func TestParseStep(t *testing.T) {
	for v, want := range map[string]int{"": 1, "1": 1, "10": 10, "250": 250} {
		if got, err := parseStep(v); err != nil || got != want {
			t.Errorf("parseStep(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"0", "-3", "ten", "1.5", " 2", "0x10"} {
		_, err := parseStep(v)
		if err == nil || !strings.Contains(err.Error(), "COUNTER_STEP") {
			t.Errorf("parseStep(%q) = %v; want an error naming COUNTER_STEP", v, err)
		}
	}
	if _, err := newCounter(hersh.Config{DisableAPIServer: true, StateDir: t.TempDir()}, 0); err == nil {
		t.Error("newCounter accepted a step of 0")
	}
}

// start builds the counter as main does and starts it under the kit.
func start(t *testing.T, cfg hersh.Config, inc int) *hershtest.Watcher {
	t.Helper()
	w, err := newCounter(cfg, inc)
	if err != nil {
		t.Fatal(err)
	}
	return hershtest.StartWatcher(t, w)
}

// counts returns the counter values recorded in counter.log.
func counts(t *testing.T, dir string) []int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "counter.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		fields := strings.Fields(line)
		n, err := strconv.Atoi(fields[len(fields)-1])
		if err != nil {
			t.Fatalf("bad line %q in counter.log", line)
		}
		out = append(out, n)
	}
	return out
}
