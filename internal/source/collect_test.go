package source_test

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/testenv"
)

func keys(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestCollectHonoursIgnoreFiles(t *testing.T) {
	dir := testenv.WriteFiles(t, map[string]string{
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
	got, err := source.Collect(dir)
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
	dir := testenv.WriteFiles(t, map[string]string{"go.mod": "module x\n", "main.go": "package main\n"})
	got, err := source.Collect(dir)
	if err != nil || keys(got.Files) != "go.mod,main.go" || got.Dockerfile != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
	empty := testenv.WriteFiles(t, map[string]string{".hershignore": "*\n"})
	if _, err := source.Collect(empty); err == nil || !strings.Contains(err.Error(), "no files") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := source.Collect(filepath.Join(dir, "main.go")); err == nil {
		t.Fatal("a file is not a directory")
	}
}
