package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/logstore"
	"github.com/hershyorg/hershy/internal/store"
)

// smallDisk mounts a tmpfs of size bytes at a new folder and returns it;
// it is unmounted at the end of the test, after the cleanups registered
// later (a Host on it is closed first). It needs root: without it the test
// is skipped, except in CI.
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mounting a small tmpfs (root is required in CI): %v", err)
		}
		t.Skipf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the small disk: %v", err)
		}
	})
	return dir
}

// fill writes a file at path until the disk is full and returns its size.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// diskFull reports whether msg says the disk is full, in the kernel's
// words or SQLite's.
func diskFull(msg string) bool {
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "database or disk is full")
}

// TestFullDisk: the data directory's disk fills while a program runs and
// writes logs. The Host stays up: a create fails with the disk's error and
// leaves nothing half made; a build fails with it and says so; the
// running program keeps running, and a stop is done and recorded. Once
// space is freed, creates and builds work again, the log capture goes on,
// and the database passes its integrity check; a new Host finds every
// program as the last one left it.
func TestFullDisk(t *testing.T) {
	dir := smallDisk(t, 48<<20)
	d := newFakeEngine(t, ticker(20*time.Millisecond), fake.Hooks{})
	open := func() *host.Host {
		return d.Open(t, dir, func(o *host.Options) { o.LogMaxBytes = 1 << 20 })
	}
	h := open()
	ctx := context.Background()
	a := createProgram(t, h, dockerfileProgram("alice", "a"))
	startProgram(t, h, a)
	hosttest.WaitState(t, h, a, lifecycle.Ready, 30*time.Second)
	b := createProgram(t, h, dockerfileProgram("alice", "b"))
	waitLog := func(what string, after time.Time) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var got bool
			h.Logs(ctx, a, logstore.Query{Since: after}, func(logstore.Line) error { got = true; return errors.New("enough") })
			if got {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log line %s", what)
			}
		}
	}
	waitLog("before the disk is full", time.Time{})
	before, _, err := h.List(ctx, store.ProgramFilter{})
	if err != nil {
		t.Fatal(err)
	}

	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	if _, err := h.Create(ctx, dockerfileProgram("alice", "c")); err == nil || !diskFull(err.Error()) {
		t.Fatalf("a create on a full disk: %v, want the disk's error", err)
	}
	if now, _, err := h.List(ctx, store.ProgramFilter{}); err != nil || len(now) != len(before) {
		t.Fatalf("after a failed create: %d programs (%v), want %d", len(now), err, len(before))
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "programs")); len(entries) != len(before) {
		t.Fatalf("a failed create left a folder: %d in programs/, want %d", len(entries), len(before))
	}
	startProgram(t, h, b) // its build cannot write its log
	if p := hosttest.WaitState(t, h, b, lifecycle.Error, 30*time.Second); !diskFull(p.ErrorMsg) {
		t.Errorf("a build on a full disk: %q, want the disk's error", p.ErrorMsg)
	}
	time.Sleep(200 * time.Millisecond) // the program writes lines the capture cannot store
	if p := stateOf(t, h, a); p.State != lifecycle.Ready {
		t.Fatalf("the running program on a full disk: %s %s", p.State, p.ErrorMsg)
	}
	if _, err := h.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	hosttest.WaitState(t, h, a, lifecycle.Stopped, 30*time.Second)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	// Nothing changes any more, and the store still gets the stop.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		trs, err := h.Transitions(ctx, a, 1)
		if err == nil && len(trs) == 1 && trs[0].To == lifecycle.Stopped {
			if !strings.Contains(trs[0].Reason, "recorded late") {
				t.Errorf("the late transition says %q", trs[0].Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stop made on a full disk never reached the store: %+v %v", trs, err)
		}
	}
	startProgram(t, h, a)
	hosttest.WaitState(t, h, a, lifecycle.Ready, 30*time.Second)
	waitLog("once space is freed", freed)
	createProgram(t, h, dockerfileProgram("alice", "c"))
	startProgram(t, h, b)
	hosttest.WaitState(t, h, b, lifecycle.Ready, 30*time.Second)
	if _, err := h.Stop(ctx, b); err != nil {
		t.Fatal(err)
	}
	hosttest.WaitState(t, h, b, lifecycle.Stopped, 30*time.Second)
	hosttest.Close(t, h)

	s, err := store.Open(filepath.Join(dir, "hershy.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("after a full disk: %v", err)
	}
	s.Close()
	h = open()
	for id, want := range map[string]lifecycle.State{a: lifecycle.Ready, b: lifecycle.Stopped} {
		if p := stateOf(t, h, id); p.State != want {
			t.Errorf("program %s after a new Host: %s, want %s", id, p.State, want)
		}
	}
}
