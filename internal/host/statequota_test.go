package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/statefs"
)

// The cap itself, enforced inside the sandbox, is in package enginetest.

const testStateCap = 8 << 20

// cappedState is the Host option of the /state tests: a capped /state of
// 16 MiB by default, 32 MiB at most.
func cappedState(t *testing.T) func(*host.Options) {
	capped := hosttest.CappedState(t)
	return func(o *host.Options) {
		capped(o)
		o.StateBytes, o.MaxStateBytes = 16<<20, 32<<20
	}
}

// Changing a program's cap: raising and lowering it while stopped, never
// below what it stores, never above the maximum. (While it runs, what the
// kernel cannot change under a container's mount is refused: that is
// enginetest's TestSetStateBytesWhileRunning.)
func TestSetStateBytes(t *testing.T) {
	f := hosttest.NewFake(t, fake.Options{})
	h := f.Open(t, t.TempDir(), cappedState(t))
	ctx := context.Background()
	id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0), Options: host.ProgramOptions{StateBytes: testStateCap}})
	defer func() {
		if err := h.Delete(ctx, id); err != nil {
			t.Error(err)
		}
	}()
	limit := func() int64 {
		t.Helper()
		row := stateOf(t, h, id)
		u, ok := h.StateUsage(row)
		if !ok || u.Limit != h.StateLimit(row) {
			t.Fatalf("usage %+v %v disagrees with the record (%d)", u, ok, h.StateLimit(row))
		}
		return u.Limit
	}
	if _, err := h.SetStateBytes(ctx, id, 64<<20); !errors.Is(err, host.ErrInvalid) {
		t.Fatalf("over the maximum: %v", err)
	}
	if _, err := h.SetStateBytes(ctx, id, 16<<20); err != nil {
		t.Fatal(err)
	}
	if got := limit(); got != 16<<20 {
		t.Fatalf("after raising: %d", got)
	}
	ten := filepath.Join(h.ProgramDir(id), "state", "ten")
	if err := os.WriteFile(ten, make([]byte, 10<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SetStateBytes(ctx, id, 8<<20); !errors.Is(err, host.ErrInvalid) {
		t.Fatalf("below what it stores: %v, want ErrInvalid", err)
	}
	if err := os.Remove(ten); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SetStateBytes(ctx, id, 12<<20); err != nil {
		t.Fatal(err)
	}
	if got := limit(); got != 12<<20 {
		t.Fatalf("after lowering: %d", got)
	}
}

// An operator's opt-out for development: /state is then a plain directory,
// a size cap cannot be asked for, and no usage is reported.
func TestUncappedState(t *testing.T) {
	h, f := hosttest.OpenFake(t) // uncapped
	ctx := context.Background()
	if _, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0), Options: host.ProgramOptions{StateBytes: testStateCap}}); !errors.Is(err, host.ErrInvalid) {
		t.Fatalf("state_bytes on an uncapped Host: %v, want ErrInvalid", err)
	}
	p, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.StateUsage(p); ok {
		t.Error("usage reported for an uncapped /state")
	}
	if _, err := os.Stat(filepath.Join(h.ProgramDir(p.ID), statefs.ImageName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an uncapped Host made an image: %v", err)
	}
	if err := h.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Open(ctx, host.Options{DataDir: t.TempDir(), StateBytes: 64 << 20, MaxStateBytes: 32 << 20}, f.Driver); err == nil {
		t.Error("a default cap above the maximum was accepted")
	}
}
