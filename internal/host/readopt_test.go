package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// ticker prints "tick N" every interval and serves a ready WatcherAPI.
func ticker(interval time.Duration) fake.Program {
	return func(ctx context.Context, p *fake.Process) int {
		if err := p.Serve(fake.WatcherAddr, watcherAPI(nil)); err != nil {
			return 1
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return 137
			case <-p.Term():
				return 0
			case <-t.C:
				fmt.Fprintf(p.Stdout(), "tick %d\n", n)
			}
		}
	}
}

// TestReadoptAfterHostRestart: a Host that closes leaves its programs
// running; the next Host on the data directory re-adopts them as they are
// (same container, no restart) and captures their output from where the
// last Host stopped: every line once, those written while no Host ran
// included.
func TestReadoptAfterHostRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := hosttest.NewFake(t, fake.Options{Program: ticker(time.Second)})
		dir := t.TempDir()
		h := f.Open(t, dir)
		id := createProgram(t, h, dockerfileProgram("ivy", "1"))
		startProgram(t, h, id)
		before := settle(t, h, id, lifecycle.Ready)
		time.Sleep(3500 * time.Millisecond)
		hosttest.Close(t, h)

		time.Sleep(5 * time.Second) // ticks 4 to 8, with no Host
		h = f.Open(t, dir)
		after := settle(t, h, id, lifecycle.Ready)
		if after.ContainerID != before.ContainerID || after.RestartCount != before.RestartCount {
			t.Fatalf("after the Host's restart: %+v, was %+v", after, before)
		}
		time.Sleep(3 * time.Second) // ticks 9 to 11
		synctest.Wait()
		ticks := hosttest.LogLines(t, h, id, "tick ")
		want := make([]string, 11)
		for i := range want {
			want[i] = fmt.Sprintf("tick %d", i+1)
		}
		if fmt.Sprint(ticks) != fmt.Sprint(want) {
			t.Fatalf("captured %q, want %q", ticks, want)
		}
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnrecordedFolderRemoved: a create moves the program's folder in
// place before it writes the record; a Host killed in between left a
// folder no program owns (found by the e2e kill test). The next Host
// removes it, and keeps the folders of recorded programs.
func TestUnrecordedFolderRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := hosttest.NewFake(t, fake.Options{Program: ticker(time.Second)})
		dir := t.TempDir()
		h := f.Open(t, dir)
		id := createProgram(t, h, dockerfileProgram("ivy", "1"))
		hosttest.Close(t, h)
		cut := filepath.Join(dir, "programs", "ivy-build-0123456789abcdef01234567-89abcdef")
		if err := os.MkdirAll(filepath.Join(cut, "src"), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(cut, "src", "main.go"), []byte("package main\n"), 0o600)
		h = f.Open(t, dir)
		if _, err := os.Stat(cut); !os.IsNotExist(err) {
			t.Errorf("the unrecorded folder is still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "programs", id, "src")); err != nil {
			t.Errorf("the recorded program's folder: %v", err)
		}
		if err := h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	})
}
