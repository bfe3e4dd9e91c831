package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func keys(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestCollectHonoursIgnoreFiles(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"Dockerfile":          "FROM scratch\n",
		"go.mod":              "module x\n",
		"main.go":             "package main\n",
		"main_test.go":        "package main\n",
		"secret.env":          "KEY=1\n",
		"keep.env":            "KEY=2\n",
		"build/out.txt":       "x",
		"pkg/a.go":            "package pkg\n",
		"pkg/tmp/b.go":        "package tmp\n",
		"pkg/deep/x.log":      "log",
		"docs/readme.md":      "docs",
		"docs/api/spec.md":    "spec",
		".git/HEAD":           "ref",
		".dockerignore":       "# comment\n\nbuild/\n*.env\n!keep.env\n",
		".hershignore":        "*_test.go\n/docs\n**/*.log\npkg/tmp\n",
		"data.bin":            "\xff\xfe\x00",
		"nested/Dockerfile":   "FROM other\n",
		"nested/build/ok.txt": "build/ only matches at the top? no: a directory named build at any depth",
	})
	got, err := collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Dockerfile != "FROM scratch\n" {
		t.Fatalf("Dockerfile = %q", got.Dockerfile)
	}
	want := ".dockerignore,.hershignore,go.mod,keep.env,main.go,nested/Dockerfile,pkg/a.go"
	if k := keys(got.Files); k != want {
		t.Fatalf("files\n got %s\nwant %s", k, want)
	}
	if strings.Join(got.Skipped, ",") != "data.bin" {
		t.Fatalf("skipped = %v", got.Skipped)
	}
}

func TestCollectWithoutIgnoreFilesAndEmpty(t *testing.T) {
	dir := writeTree(t, map[string]string{"go.mod": "module x\n", "main.go": "package main\n"})
	got, err := collect(dir)
	if err != nil || keys(got.Files) != "go.mod,main.go" || got.Dockerfile != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
	empty := writeTree(t, map[string]string{".hershignore": "*\n"})
	if _, err := collect(empty); err == nil || !strings.Contains(err.Error(), "no files") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := collect(filepath.Join(dir, "main.go")); err == nil {
		t.Fatal("a file is not a directory")
	}
}

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"**/*.log", "a/b/c.log", true},
		{"**/*.log", "c.log", true},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "b/z", false},
		{"*.go", "main.go", true},
		{"*.go", "a/main.go", false},
	}
	for _, c := range cases {
		if got := matchGlob(c.pat, c.name); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %v", c.pat, c.name, got)
		}
	}
}
