package statearchive

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/statearchive/archivetest"
)

func TestEntryName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"a", "a", true},
		{"d/", "d", true},
		{"d/e/f.json", "d/e/f.json", true},
		{".hidden", ".hidden", true},
		{"", "", false},
		{"/", "", false},
		{"/abs", "", false},
		{"..", "", false},
		{"../x", "", false},
		{"a/../../x", "", false},
		{"a/./b", "", false},
		{"./a", "", false},
		{"a//b", "", false},
		{"a\nb", "", false},
		{"a\\b", "", false},
		{"a\x7f", "", false},
		{strings.Repeat("n", MaxName), strings.Repeat("n", MaxName), true},
		{strings.Repeat("n", MaxName+1), "", false},
	} {
		got, err := EntryName(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("EntryName(%q) = %q, %v; want %q (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("EntryName(%q): %v does not wrap ErrRefused", tc.in, err)
		}
	}
}

// hostile are archives every reader must refuse.
var hostile = map[string][]tar.Header{
	"traversal":      {{Name: "../../escaped", Typeflag: tar.TypeReg, Size: 1}},
	"deep traversal": {{Name: "a/../../../escaped", Typeflag: tar.TypeReg, Size: 1}},
	"absolute":       {{Name: "/tmp/escaped", Typeflag: tar.TypeReg, Size: 1}},
	"symlink out":    {{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
	"hard link":      {{Name: "link", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}},
	"device":         {{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
	"block device":   {{Name: "blk", Typeflag: tar.TypeBlock, Devmajor: 7}},
	"fifo":           {{Name: "fifo", Typeflag: tar.TypeFifo}},
	"control chars":  {{Name: "a\nb", Typeflag: tar.TypeReg, Size: 1}},
	"over the cap":   {{Name: "big", Typeflag: tar.TypeReg, Size: 17 << 20}},
	"over the cap in all": {
		{Name: "a", Typeflag: tar.TypeReg, Size: 9 << 20}, {Name: "b", Typeflag: tar.TypeReg, Size: 9 << 20},
	},
	"a folder then a link in it": {
		{Name: "d/", Typeflag: tar.TypeDir}, {Name: "d/x", Typeflag: tar.TypeSymlink, Linkname: "/"},
	},
	"a file twice":                     {{Name: "a", Typeflag: tar.TypeReg, Size: 1}, {Name: "a", Typeflag: tar.TypeReg, Size: 1}},
	"a file then a folder of its name": {{Name: "a", Typeflag: tar.TypeReg, Size: 1}, {Name: "a/", Typeflag: tar.TypeDir}},
	"a file below a file":              {{Name: "a", Typeflag: tar.TypeReg, Size: 1}, {Name: "a/b", Typeflag: tar.TypeReg, Size: 1}},
}

// TestRefusals: each hostile archive is refused by Check and by Extract,
// with ErrRefused, and Extract writes nothing outside its folder.
func TestRefusals(t *testing.T) {
	const limit = 16 << 20
	for name, hdrs := range hostile {
		t.Run(name, func(t *testing.T) {
			archive := archivetest.Make(t, hdrs...)
			if _, err := Check(bytes.NewReader(archive), limit); !errors.Is(err, ErrRefused) {
				t.Errorf("Check: %v, want ErrRefused", err)
			}
			root := t.TempDir()
			dir := filepath.Join(root, "a", "b", "in")
			os.MkdirAll(dir, 0o700)
			if _, err := Extract(bytes.NewReader(archive), dir, limit, os.Getuid(), os.Getgid()); !errors.Is(err, ErrRefused) {
				t.Errorf("Extract: %v, want ErrRefused", err)
			}
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && !strings.HasPrefix(p, dir) && p != root && !strings.HasPrefix(dir, p) {
					t.Errorf("written outside the folder: %s", p)
				}
				if err == nil && d.Type()&os.ModeType != 0 && !d.IsDir() {
					t.Errorf("a special file was made: %s (%v)", p, d.Type())
				}
				return nil
			})
		})
	}
	for name, b := range map[string][]byte{
		"not gzip":   []byte("not gzip"),
		"cut short":  cut(archivetest.Make(t, tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: 100 << 10})),
		"trailing":   append(archivetest.Make(t, tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: 1}), "junk"...),
		"empty file": nil,
	} {
		if _, err := Check(bytes.NewReader(b), limit); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: Check: %v, want ErrRefused", name, err)
		}
	}
}

func cut(b []byte) []byte { return b[:len(b)/2] }

// TestEntryLimit: one entry past the limit is refused (the limit lowered
// from MaxEntries: a hundred thousand entries take 18 s under the race
// detector).
func TestEntryLimit(t *testing.T) {
	defer func(n int) { entryLimit = n }(entryLimit)
	entryLimit = 100
	hdrs := make([]tar.Header, entryLimit+1)
	for i := range hdrs {
		hdrs[i] = tar.Header{Name: "d/", Typeflag: tar.TypeDir}
	}
	if _, err := Check(bytes.NewReader(archivetest.Make(t, hdrs...)), 1); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "entries") {
		t.Errorf("Check of %d entries: %v", len(hdrs), err)
	}
	if _, err := Check(bytes.NewReader(archivetest.Make(t, hdrs[:entryLimit]...)), 1); err != nil {
		t.Errorf("Check of %d entries: %v", entryLimit, err)
	}
}

// TestRoundTrip: Write leaves out links, lost+found and an unfinished
// import; Extract gives back the files and folders; Swap replaces what a
// folder held, keeping lost+found.
func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "book"), 0o700)
	os.MkdirAll(filepath.Join(src, "lost+found"), 0o700)
	os.MkdirAll(filepath.Join(src, TempPrefix+"0123456789ab"), 0o700)
	os.WriteFile(filepath.Join(src, "counter.json"), []byte(`{"n":41}`), 0o600)
	os.WriteFile(filepath.Join(src, "book", "orders"), []byte("buy 1\n"), 0o644)
	os.Symlink("/etc/hostname", filepath.Join(src, "planted"))
	var buf bytes.Buffer
	skipped, err := Write(&buf, src)
	if err != nil || skipped != 1 {
		t.Fatalf("Write: skipped %d, %v", skipped, err)
	}
	res, err := Check(bytes.NewReader(buf.Bytes()), 1<<20)
	if err != nil || res.Files != 2 || res.Bytes != int64(len(`{"n":41}`)+len("buy 1\n")) {
		t.Fatalf("Check: %+v %v", res, err)
	}

	dst := t.TempDir()
	os.MkdirAll(filepath.Join(dst, "lost+found"), 0o700)
	os.WriteFile(filepath.Join(dst, "old"), []byte("x"), 0o600)
	tmp := filepath.Join(dst, TempPrefix+NewToken())
	os.Mkdir(tmp, 0o700)
	if got, err := Extract(bytes.NewReader(buf.Bytes()), tmp, 1<<20, os.Getuid(), os.Getgid()); err != nil || got != res {
		t.Fatalf("Extract: %+v %v, want %+v", got, err, res)
	}
	// The cap counts file bytes: one byte less is refused.
	if _, err := Check(bytes.NewReader(buf.Bytes()), res.Bytes-1); !errors.Is(err, ErrRefused) {
		t.Errorf("Check under the cap: %v", err)
	}
	if err := Swap(dst, tmp); err != nil {
		t.Fatal(err)
	}
	os.Remove(tmp)
	var names []string
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dst, p)
		names = append(names, rel)
		return nil
	})
	if got := strings.Join(names, " "); got != ". book book/orders counter.json lost+found" {
		t.Errorf("after the swap: %s", got)
	}
	if info, err := os.Stat(filepath.Join(dst, "book", "orders")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("imported file mode: %v %v", info, err)
	}
}

// TestHelper runs the state helper's commands as a helper Pod's driver
// does: export; import into a folder beside the files, which stay until
// commit; discard; a refused archive's exit status and message.
func TestHelper(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "old"), []byte("x"), 0o600)
	archive := archivetest.Make(t, tar.Header{Name: "d/", Typeflag: tar.TypeDir}, tar.Header{Name: "d/new", Typeflag: tar.TypeReg, Size: 3})
	run := func(stdin []byte, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := RunHelper(args, bytes.NewReader(stdin), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	token := NewToken()
	if code, out, errOut := run(archive, "import", dir, token, "1024"); code != 0 || out != "{\"files\":1,\"bytes\":3}\n" {
		t.Fatalf("import: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "old")); err != nil {
		t.Error("the old file went before the commit")
	}
	if code, _, errOut := run(nil, "commit", dir, token); code != 0 {
		t.Fatalf("commit: %d %s", code, errOut)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "d" {
		t.Errorf("after the commit: %v", entries)
	}
	code, out, _ := run(nil, "export", dir)
	if code != 0 {
		t.Fatalf("export: %d", code)
	}
	if res, err := Check(strings.NewReader(out), 1024); err != nil || res.Files != 1 {
		t.Errorf("exported archive: %+v %v", res, err)
	}

	token = NewToken()
	run(archive, "import", dir, token, "1024")
	if code, _, errOut := run(nil, "discard", dir, token); code != 0 {
		t.Fatalf("discard: %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, TempPrefix+token)); !errors.Is(err, os.ErrNotExist) {
		t.Error("discard left the import's folder")
	}

	code, _, errOut := run(archivetest.Make(t, hostile["traversal"]...), "import", dir, NewToken(), "1024")
	if code != HelperRefused || !strings.Contains(errOut, "clean relative name") {
		t.Errorf("a traversal: %d %q", code, errOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a refused import left %v", entries)
	}
	for _, args := range [][]string{
		{}, {"nope"}, {"export", "relative"}, {"export", "/"}, {"import", dir, "../../x", "1"},
		{"import", dir, NewToken(), "-1"}, {"commit", dir, "zz"}, {"wait", "0"},
	} {
		if code, _, _ := run(nil, args...); code != 1 {
			t.Errorf("%q: exit status %d, want 1", args, code)
		}
	}
}
