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

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/statearchive/archivetest"
)

// TestStateExportImport: an export of a running program stops it for the
// copy and starts it again; the archive holds its files and folders but
// not a link it planted; an import into another, stopped program gives it
// the same files, owned by nothing else, and replaces what it had.
func TestStateExportImport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := hosttest.OpenFake(t)
		ctx := context.Background()
		src := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
		startProgram(t, h, src)
		settle(t, h, src, lifecycle.Ready)
		state := filepath.Join(h.ProgramDir(src), "state")
		os.MkdirAll(filepath.Join(state, "book"), 0o700)
		os.WriteFile(filepath.Join(state, "counter.json"), []byte(`{"n":41}`), 0o600)
		os.WriteFile(filepath.Join(state, "book", "orders"), []byte("buy 1\n"), 0o600)
		os.Symlink("/etc/hostname", filepath.Join(state, "planted"))

		var archive bytes.Buffer
		if err := h.ExportState(ctx, src, &archive); err != nil {
			t.Fatal(err)
		}
		if p := settle(t, h, src, lifecycle.Ready); p.State != lifecycle.Ready {
			t.Errorf("after the export the program is %s, want it started again", p.State)
		}
		// The program's own durable file (hersh-context.json) besides ours.
		names := strings.Join(archivetest.Names(t, archive.Bytes()), " ")
		if !strings.HasPrefix(names, "book/ book/orders counter.json") || strings.Contains(names, "planted") {
			t.Errorf("archive entries %v", names)
		}

		dst := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(1)})
		dstState := filepath.Join(h.ProgramDir(dst), "state")
		os.WriteFile(filepath.Join(dstState, "old"), []byte("x"), 0o600)
		res, err := h.ImportState(ctx, dst, bytes.NewReader(archive.Bytes()))
		if err != nil || res.Files != strings.Count(names, " ") || res.Bytes < int64(len(`{"n":41}`)+len("buy 1\n")) {
			t.Fatalf("import: %+v %v", res, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dstState, "book", "orders")); string(b) != "buy 1\n" {
			t.Errorf("imported file: %q", b)
		}
		if _, err := os.Lstat(filepath.Join(dstState, "old")); !errors.Is(err, os.ErrNotExist) {
			t.Error("the old /state survived the import")
		}
		if _, err := os.Lstat(filepath.Join(dstState, "planted")); !errors.Is(err, os.ErrNotExist) {
			t.Error("the planted link came through")
		}
		// A running program's /state is not replaced under it.
		if _, err := h.ImportState(ctx, src, bytes.NewReader(archive.Bytes())); !errors.Is(err, host.ErrConflict) {
			t.Errorf("import into a running program: %v, want ErrConflict", err)
		}
	})
}

// TestStateImportRefusals: each hostile archive is refused, and /state is
// left as it was.
func TestStateImportRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := hosttest.OpenFake(t, func(o *host.Options) { o.StateBytes, o.MaxStateBytes = 8<<20, 16<<20 })
		ctx := context.Background()
		id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
		state := filepath.Join(h.ProgramDir(id), "state")
		os.WriteFile(filepath.Join(state, "keep"), []byte("mine"), 0o600)
		outside := filepath.Join(h.ProgramDir(id), "escaped")
		for name, entries := range map[string][]tar.Header{
			"traversal":      {{Name: "../../escaped", Typeflag: tar.TypeReg, Size: 1}},
			"deep traversal": {{Name: "a/../../../escaped", Typeflag: tar.TypeReg, Size: 1}},
			"absolute":       {{Name: "/tmp/escaped", Typeflag: tar.TypeReg, Size: 1}},
			"symlink out":    {{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
			"hard link":      {{Name: "link", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}},
			"device":         {{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
			"fifo":           {{Name: "fifo", Typeflag: tar.TypeFifo}},
			"control chars":  {{Name: "a\nb", Typeflag: tar.TypeReg, Size: 1}},
			"over the cap":   {{Name: "big", Typeflag: tar.TypeReg, Size: 17 << 20}},
			"a file then a link through its folder": {
				{Name: "d/", Typeflag: tar.TypeDir}, {Name: "d/x", Typeflag: tar.TypeSymlink, Linkname: "/"},
			},
		} {
			_, err := h.ImportState(ctx, id, bytes.NewReader(archivetest.Make(t, entries...)))
			if !errors.Is(err, host.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
			if b, _ := os.ReadFile(filepath.Join(state, "keep")); string(b) != "mine" {
				t.Errorf("%s: /state changed", name)
			}
			if _, err := os.Lstat(outside); err == nil {
				t.Errorf("%s: a file was written outside /state", name)
			}
		}
		if _, err := h.ImportState(ctx, id, strings.NewReader("not gzip")); !errors.Is(err, host.ErrInvalid) {
			t.Errorf("not an archive: %v", err)
		}
	})
}
