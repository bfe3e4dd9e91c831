package host

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/source"
)

func TestRelPaths(t *testing.T) {
	d := filepath.Join(t.TempDir(), "data")
	ps := newPathScrubber(d)
	for _, c := range []struct{ in, want string }{
		{"open " + d + "/programs/alice-1/src/main.go: no such file", "open src/main.go: no such file"},
		{"mkdir " + d + "/tmp/alice-1-123/.src.tmp-9/a: not a directory", "mkdir .src.tmp-9/a: not a directory"},
		{d + "/work/b1-77/src/go.mod:3: unknown directive: foo", "src/go.mod:3: unknown directive: foo"},
		{`error mounting "` + d + `/programs/p/state" to rootfs at "/state"`, `error mounting "state" to rootfs at "/state"`},
		{"removing storage: unlinkat " + d + "/programs/p: busy", "removing storage: unlinkat .: busy"},
		{"open " + d + "/builds/x.log: denied", "open " + DataDirVar + "/builds/x.log: denied"},
		{"open " + d + "/programs: denied", "open " + DataDirVar + "/programs: denied"},
		{"lock " + d + ": busy", "lock " + DataDirVar + ": busy"},
		{"twice: " + d + "/a and " + d + "/programs/p/logs/x", "twice: " + DataDirVar + "/a and logs/x"},
		{"a sibling " + d + "2/x and " + d + "-old stay", "a sibling " + d + "2/x and " + d + "-old stay"},
		{"nothing to hide", "nothing to hide"},
	} {
		if got := ps.scrub(c.in); got != c.want {
			t.Errorf("scrub(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}

	// Reached through a symbolic link, the real path is hidden too.
	real := filepath.Join(t.TempDir(), "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	ps = newPathScrubber(link)
	for _, in := range []string{real + "/programs/p/src/a.go", link + "/programs/p/src/a.go"} {
		if got := ps.scrub(in); got != "src/a.go" {
			t.Errorf("through a link: scrub(%q) = %q", in, got)
		}
	}
}

// TestRelErr: a real error of source.WriteTree in the data directory
// loses the absolute path and keeps its identity for errors.Is.
func TestRelErr(t *testing.T) {
	d := t.TempDir()
	h := &Host{paths: newPathScrubber(d)}
	dst := filepath.Join(d, "programs", "p", "src")
	os.MkdirAll(dst, 0o700)
	err := source.WriteTree(dst, "", source.Files{"go.mod": "module x\n"})
	if err == nil || !strings.Contains(err.Error(), d) {
		t.Fatalf("WriteTree over an existing folder: %v", err)
	}
	rel := h.relErr(err)
	if strings.Contains(rel.Error(), d) || !strings.Contains(rel.Error(), "write tree src") || !errors.Is(rel, fs.ErrExist) {
		t.Fatalf("relErr: %q (errors.Is ErrExist: %v)", rel, errors.Is(rel, fs.ErrExist))
	}
	if h.relErr(nil) != nil {
		t.Fatal("relErr(nil) is not nil")
	}
	plain := errors.New("no path here")
	if h.relErr(plain) != plain {
		t.Fatal("an error without paths was wrapped")
	}
}
