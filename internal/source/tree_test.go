package source

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
)

func sampleFiles() Files {
	return Files{
		"go.mod":              "module example.com/x\n",
		"main.go":             "package main\n",
		"internal/a/a.go":     "package a\n",
		"internal/a/b/b.go":   "package b\n",
		"internal/c.go":       "package internal\n",
		"assets/empty.txt":    "",
		"assets/bin.dat":      "\x00\x01\x02\xff",
		".hidden/config.yaml": "x: 1\n",
	}
}

// entries lists a folder's entry names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names
}

func TestWriteReadTreeRoundTrip(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "src")
	files := sampleFiles()
	if err := WriteTree(dst, "FROM scratch\n", files); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, parent); !reflect.DeepEqual(got, []string{"src"}) {
		t.Fatalf("parent holds %v, want only src", got)
	}
	got, dockerfile, err := ReadTree(dst)
	if err != nil {
		t.Fatal(err)
	}
	if dockerfile != "FROM scratch\n" || !reflect.DeepEqual(got, files) {
		t.Fatalf("ReadTree = %q, %v; want the input back", dockerfile, got)
	}
	if BuildID("alice", dockerfile, got) != BuildID("alice", "FROM scratch\n", files) {
		t.Fatal("the build id changed across a write and read")
	}
	// Permissions: folders 0700, files 0600.
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | fs.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteTreeNoDockerfile(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "src")
	if err := WriteTree(dst, "", Files{"go.mod": "module x\n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "Dockerfile")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a Dockerfile was written: %v", err)
	}
	files, dockerfile, err := ReadTree(dst)
	if err != nil || dockerfile != "" || !reflect.DeepEqual(files, Files{"go.mod": "module x\n"}) {
		t.Fatalf("ReadTree = %v, %q, %v", files, dockerfile, err)
	}
	// An empty tree is a valid (if useless) tree.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := WriteTree(empty, "", Files{}); err != nil {
		t.Fatal(err)
	}
	if files, _, err := ReadTree(empty); err != nil || len(files) != 0 {
		t.Fatalf("ReadTree(empty) = %v, %v", files, err)
	}
}

func TestWriteTreeRefusesExisting(t *testing.T) {
	for _, existing := range []string{"non-empty folder", "empty folder", "file"} {
		t.Run(existing, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "src")
			switch existing {
			case "non-empty folder":
				if err := os.MkdirAll(filepath.Join(dst, "keep"), 0o700); err != nil {
					t.Fatal(err)
				}
			case "empty folder":
				if err := os.Mkdir(dst, 0o700); err != nil {
					t.Fatal(err)
				}
			case "file":
				if err := os.WriteFile(dst, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := entries(t, parent)
			err := WriteTree(dst, "", Files{"a": "b"})
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("WriteTree over an existing %s = %v, want fs.ErrExist", existing, err)
			}
			if after := entries(t, parent); !reflect.DeepEqual(after, before) {
				t.Fatalf("parent changed from %v to %v", before, after)
			}
		})
	}
}

func TestRenameNoReplaceEmptyFolder(t *testing.T) {
	// The race WriteTree's Lstat check cannot close: dst appears (as an
	// empty folder, which rename(2) would silently replace) between the
	// check and the rename.
	parent := t.TempDir()
	src, dst := filepath.Join(parent, "a"), filepath.Join(parent, "b")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := renameNoReplace(src, dst); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("renameNoReplace onto an empty folder = %v, want fs.ErrExist", err)
	}
	if err := renameNoReplace(src, filepath.Join(parent, "c")); err != nil {
		t.Fatal(err)
	}
}

func TestWriteTreeFailureLeavesNothing(t *testing.T) {
	files := sampleFiles()
	all := len(files) + 1 // and the Dockerfile
	for failAt := 0; failAt < all; failAt++ {
		parent := t.TempDir()
		dst := filepath.Join(parent, "src")
		n := 0
		injected := errors.New("disk full (injected)")
		tw := treeWriter{beforeWrite: func(string) error {
			if n == failAt {
				return injected
			}
			n++
			return nil
		}}
		err := tw.write(dst, "FROM scratch\n", files)
		if !errors.Is(err, injected) {
			t.Fatalf("failing at file %d: err = %v, want the injected error", failAt, err)
		}
		if got := entries(t, parent); len(got) != 0 {
			t.Fatalf("failing at file %d left %v behind", failAt, got)
		}
	}
}

func TestWriteTreeInvalidWritesNothing(t *testing.T) {
	for _, files := range []Files{
		{"ok.go": "", "../escape": "x"},
		{"/abs": "x"},
		{"a": "", "a/b": ""},
		{"Dockerfile": "FROM x"}, // given twice, with the dockerfile below
	} {
		parent := t.TempDir()
		err := WriteTree(filepath.Join(parent, "src"), "FROM scratch", files)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("WriteTree(%v) = %v, want a *ValidationError", files, err)
		}
		if got := entries(t, parent); len(got) != 0 {
			t.Errorf("WriteTree(%v) left %v behind", files, got)
		}
	}
}

func TestWriteTreeMissingParent(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "missing", "src")
	err := WriteTree(dst, "", Files{"a": "b"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("WriteTree with a missing parent = %v, want fs.ErrNotExist", err)
	}
}

func TestReadTreeRefusesSymlinks(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("password"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(dir string) error{
		"file link":        func(dir string) error { return os.Symlink(secret, filepath.Join(dir, "link")) },
		"folder link":      func(dir string) error { return os.Symlink(outside, filepath.Join(dir, "sub", "linked")) },
		"dangling link":    func(dir string) error { return os.Symlink("/nonexistent", filepath.Join(dir, "dangling")) },
		"relative link":    func(dir string) error { return os.Symlink("../../secret", filepath.Join(dir, "sub", "rel")) },
		"Dockerfile link":  func(dir string) error { return os.Symlink(secret, filepath.Join(dir, "Dockerfile")) },
		"link to own file": func(dir string) error { return os.Symlink("main.go", filepath.Join(dir, "alias.go")) },
	}
	for name, plant := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			if err := WriteTree(dir, "", Files{"main.go": "package main\n", "sub/x.go": "package sub\n"}); err != nil {
				t.Fatal(err)
			}
			if err := plant(dir); err != nil {
				t.Fatal(err)
			}
			files, _, err := ReadTree(dir)
			if !errors.Is(err, ErrSymlink) {
				t.Fatalf("ReadTree = %v, %v; want ErrSymlink", files, err)
			}
		})
	}
	t.Run("root is a link", func(t *testing.T) {
		parent := t.TempDir()
		real := filepath.Join(parent, "real")
		if err := WriteTree(real, "", Files{"a": "b"}); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(parent, "link")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadTree(link); !errors.Is(err, ErrSymlink) {
			t.Fatalf("ReadTree(link) = %v, want ErrSymlink", err)
		}
	})
}

func TestReadNoFollow(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// A file swapped for a link after the walk saw it is still refused.
	if _, err := readNoFollow(link); !errors.Is(err, ErrSymlink) {
		t.Fatalf("readNoFollow(link) = %v, want ErrSymlink", err)
	}
}

func TestReadTreeRefusesSpecialFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	if err := WriteTree(dir, "", Files{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if _, _, err := ReadTree(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("ReadTree with a fifo = %v, want a not-a-regular-file error", err)
	}
}

func TestReadTreeRefusesBadNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	if err := WriteTree(dir, "", Files{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad\nname"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadTree(dir); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Fatalf("ReadTree = %v, want a control-character error", err)
	}
}

func TestRenameChecked(t *testing.T) {
	parent := t.TempDir()
	a, b, c := filepath.Join(parent, "a"), filepath.Join(parent, "b"), filepath.Join(parent, "c")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := renameChecked(a, b); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("renameChecked onto an existing folder = %v, want fs.ErrExist", err)
	}
	if err := renameChecked(a, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c); err != nil {
		t.Fatal(err)
	}
}

func TestReadTreeNotAFolder(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := ReadTree(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadTree(missing) = %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadTree(file); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("ReadTree(file) = %v", err)
	}
}
