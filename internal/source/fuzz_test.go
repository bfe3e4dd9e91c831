package source

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSourceTree: whatever names and contents a user sends, ValidateSource
// answers with a *ValidationError or accepts; an accepted source is written
// by WriteTree entirely inside its folder (nothing beside it) and read back
// by ReadTree exactly. Names come from the fuzzer as one string split at
// "|" (so that several files, and names that collide once cleaned, are
// reached quickly).
func FuzzSourceTree(f *testing.F) {
	f.Add("main.go|go.mod", "package main", "")
	f.Add("a/b/c.go|a/d.txt|.hershignore", "x", "FROM scratch\n")
	f.Add("../etc/passwd|a//b|./a", "x", "")
	f.Add("a|a/b", "x", "")
	f.Add("Dockerfile|x", "FROM scratch", "FROM scratch\n")
	f.Add("dir/\x00nul|tab\there|\u202ertl", "x", "")
	f.Fuzz(func(t *testing.T, names, content, dockerfile string) {
		files := Files{}
		for i, n := range strings.Split(names, "|") {
			files[n] = content + strings.Repeat("!", i)
		}
		err := ValidateSource(dockerfile, files, Limits{})
		if err != nil {
			if _, ok := errors.AsType[*ValidationError](err); !ok {
				t.Fatalf("ValidateSource: %T %v, want a *ValidationError", err, err)
			}
			return
		}
		parent := t.TempDir()
		dst := filepath.Join(parent, "tree")
		if err := WriteTree(dst, dockerfile, files); err != nil {
			t.Fatalf("WriteTree of a valid source: %v", err)
		}
		entries, err := os.ReadDir(parent)
		if err != nil || len(entries) != 1 || entries[0].Name() != "tree" {
			t.Fatalf("WriteTree wrote beside its folder: %v %v", entries, err)
		}
		err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				t.Errorf("a link in the tree: %s", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		got, gotDockerfile, err := ReadTree(dst)
		if err != nil {
			t.Fatalf("ReadTree of a written tree: %v", err)
		}
		want := maps.Clone(files)
		wantDockerfile := dockerfile
		if d, ok := want[DockerfileName]; ok && dockerfile == "" {
			delete(want, DockerfileName) // a root Dockerfile file comes back apart
			wantDockerfile = d
		}
		if !maps.Equal(got, want) || gotDockerfile != wantDockerfile {
			t.Fatalf("read back %q / %q, wrote %q / %q", got, gotDockerfile, want, wantDockerfile)
		}
	})
}
