package host_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/statefs"
)

// TestStateUsageRecent: a list's /state usage is read again only once the
// last reading is host.UsageFresh old, while StateUsage always reads it
// now. The Host runs on the fake engine with real capped /state
// filesystems (root, loop devices: required in CI).
func TestStateUsageRecent(t *testing.T) {
	capped := hosttest.CappedState(t)
	d := newFakeEngine(t, nil, fake.Hooks{})
	h := d.Open(t, t.TempDir(), capped, func(o *host.Options) { o.StateBytes = 16 << 20 })
	id := createProgram(t, h, dockerfileProgram("alice", "1"))
	row := stateOf(t, h, id)

	first, ok := h.StateUsageRecent(row)
	if !ok || first.Limit != 16<<20 {
		t.Fatalf("usage %+v, %v", first, ok)
	}
	if err := os.WriteFile(filepath.Join(h.ProgramDir(id), statefs.MountName, "data.bin"), make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	now, _ := h.StateUsage(row)
	if now.Used < first.Used+2<<20 {
		t.Fatalf("StateUsage after writing 2 MiB: %d, before %d", now.Used, first.Used)
	}
	if again, _ := h.StateUsageRecent(row); again != first {
		t.Fatalf("a fresh reading was read again: %+v, first %+v", again, first)
	}
	h.AgeUsage(id, host.UsageFresh)
	if later, _ := h.StateUsageRecent(row); later != now {
		t.Fatalf("a stale reading was kept: %+v, want %+v", later, now)
	}
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if h.UsageKept(id) {
		t.Fatal("the usage of a deleted program is kept")
	}
}
