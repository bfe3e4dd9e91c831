package main

import (
	"bytes"
	"context"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

// TestCounter runs the managed logic on synctest's fake clock: time.Sleep
// advances time instantly, and synctest.Wait returns once every goroutine
// of the watcher has settled.
func TestCounter(t *testing.T) {
	out := captureLog(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := hersh.Config{DisableAPIServer: true, StateDir: dir}

		w := start(t, cfg)
		time.Sleep(3*time.Second + time.Millisecond) // three ticks
		synctest.Wait()
		send(t, w, "reset")
		send(t, w, "status")
		send(t, w, "hello")
		time.Sleep(2 * time.Second) // two more ticks
		synctest.Wait()
		stop(t, w)

		if got, want := counts(t, dir), []int{1, 2, 3, 0, 1, 2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("counter.log holds %v, want %v", got, want)
		}
		for _, line := range []string{"status: counter is 0", `unknown message "hello"`} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("log lacks %q:\n%s", line, out)
			}
		}

		// A second watcher on the same directory resumes from 2.
		w = start(t, cfg)
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		stop(t, w)
		if got, want := counts(t, dir), []int{1, 2, 3, 0, 1, 2, 3}; !reflect.DeepEqual(got, want) {
			t.Fatalf("after restart counter.log holds %v, want %v", got, want)
		}
		if !strings.Contains(out.String(), "counter starts at 2") {
			t.Errorf("restarted watcher did not restore the counter:\n%s", out)
		}
	})
}

// TestCounterStep checks that each tick adds the step, and that a reset
// starts counting from 0 again in the same steps.
func TestCounterStep(t *testing.T) {
	captureLog(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := hersh.Config{DisableAPIServer: true, StateDir: dir}

		w := startStep(t, cfg, 10)
		time.Sleep(2*time.Second + time.Millisecond) // two ticks
		synctest.Wait()
		send(t, w, "reset")
		time.Sleep(time.Second) // one more tick
		synctest.Wait()
		stop(t, w)

		if got, want := counts(t, dir), []int{10, 20, 0, 10}; !reflect.DeepEqual(got, want) {
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

func start(t *testing.T, cfg hersh.Config) *hersh.Watcher {
	t.Helper()
	return startStep(t, cfg, 1)
}

func startStep(t *testing.T, cfg hersh.Config, inc int) *hersh.Watcher {
	t.Helper()
	w, err := newCounter(cfg, inc)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
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
