package host_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/statearchive/archivetest"
)

// TestStateVolumesExportImport: on an engine that keeps /state
// (driver.StateCopier), an export of a running program stops it for the
// copy and starts it again; an import goes into a program that never
// started (its volume made for it), a hostile one is refused with the
// volume unchanged, and a running program's is refused.
func TestStateVolumesExportImport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := hosttest.NewFake(t, fake.Options{})
		h, v := f.OpenVolumes(t, t.TempDir())
		ctx := context.Background()
		volume := func(id string) string { return v.VolumeDir("hersh-state-" + id) }
		src := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
		startProgram(t, h, src)
		settle(t, h, src, lifecycle.Ready)
		os.WriteFile(filepath.Join(volume(src), "counter.json"), []byte(`{"n":41}`), 0o600)

		var archive bytes.Buffer
		if err := h.ExportState(ctx, src, &archive); err != nil {
			t.Fatal(err)
		}
		if p := settle(t, h, src, lifecycle.Ready); p.State != lifecycle.Ready {
			t.Errorf("after the export the program is %s, want it started again", p.State)
		}
		if names := strings.Join(archivetest.Names(t, archive.Bytes()), " "); !strings.Contains(names, "counter.json") {
			t.Errorf("archive entries %v", names)
		}

		dst := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(1)})
		if _, err := h.ImportState(ctx, dst, bytes.NewReader(archive.Bytes())); err != nil {
			t.Fatalf("import into a program that never started: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(volume(dst), "counter.json")); string(b) != `{"n":41}` {
			t.Errorf("imported file: %q", b)
		}
		before, _ := os.ReadDir(volume(dst))
		hostile := archivetest.Make(t, tar.Header{Name: "ok", Typeflag: tar.TypeReg, Size: 1}, tar.Header{Name: "../../escaped", Typeflag: tar.TypeReg, Size: 1})
		if _, err := h.ImportState(ctx, dst, bytes.NewReader(hostile)); !errors.Is(err, host.ErrInvalid) {
			t.Errorf("a traversal: %v, want ErrInvalid", err)
		}
		if after, _ := os.ReadDir(volume(dst)); len(after) != len(before) || len(after) != 2 {
			t.Errorf("the volume after a refused import: %v, before %v", after, before)
		}
		if b, _ := os.ReadFile(filepath.Join(volume(dst), "counter.json")); string(b) != `{"n":41}` {
			t.Errorf("a refused import changed a file: %q", b)
		}
		if _, err := h.ImportState(ctx, src, bytes.NewReader(archive.Bytes())); !errors.Is(err, host.ErrConflict) {
			t.Errorf("import into a running program: %v, want ErrConflict", err)
		}
	})
}
