package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/statefs"
)

// TestStateUsageRecent: a list's /state usage is read again only once the
// last reading is usageFresh old, while StateUsage always reads it now.
// The Host runs on the fake engine with real capped /state filesystems
// (root, loop devices: required in CI).
func TestStateUsageRecent(t *testing.T) {
	if err := statefs.Check(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("capped filesystems are required in CI: %v", err)
		}
		t.Skip(err)
	}
	d := fake.New(fake.Options{Program: fake.Script{API: watcherAPI(nil)}.Program()})
	t.Cleanup(func() { d.Close() })
	opts := Options{DataDir: t.TempDir(), Runtime: "runc", StateBytes: 16 << 20}
	opts.Build.GoBinary = "/nonexistent/go"
	h, err := Open(context.Background(), opts, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	id := createProgram(t, h, dockerfileProgram("alice", "1"))
	row := stateOf(t, h, id)

	first, ok := h.StateUsageRecent(row)
	if !ok || first.Limit != 16<<20 {
		t.Fatalf("usage %+v, %v", first, ok)
	}
	if err := os.WriteFile(filepath.Join(h.programDir(id), statefs.MountName, "data.bin"), make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	now, _ := h.StateUsage(row)
	if now.Used < first.Used+2<<20 {
		t.Fatalf("StateUsage after writing 2 MiB: %d, before %d", now.Used, first.Used)
	}
	if again, _ := h.StateUsageRecent(row); again != first {
		t.Fatalf("a reading %v old was read again: %+v, first %+v", usageFresh, again, first)
	}
	h.usageMu.Lock()
	c := h.usage[id]
	c.at = c.at.Add(-usageFresh)
	h.usage[id] = c
	h.usageMu.Unlock()
	if later, _ := h.StateUsageRecent(row); later != now {
		t.Fatalf("a stale reading was kept: %+v, want %+v", later, now)
	}
	if err := h.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	h.usageMu.Lock()
	defer h.usageMu.Unlock()
	if _, ok := h.usage[id]; ok {
		t.Fatal("the usage of a deleted program is kept")
	}
}
