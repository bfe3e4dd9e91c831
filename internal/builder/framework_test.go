package builder

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/builder/internal/fwzip"
	"github.com/hershyorg/hershy/internal/source"
)

// TestFrameworkArchiveFresh fails when hershsrc.zip no longer matches the
// framework's source in ../../hersh: the Host would build programs against
// an old framework.
func TestFrameworkArchiveFresh(t *testing.T) {
	current, err := fwzip.Collect(filepath.Join("..", "..", "hersh"))
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := fwzip.Unzip(frameworkZip)
	if err != nil {
		t.Fatal(err)
	}
	if diff := fwzip.Diff(current, embedded); len(diff) > 0 {
		t.Fatalf("internal/build/hershsrc.zip is stale compared to hersh/:\n\t%s\nrun: go generate ./internal/build",
			strings.Join(diff, "\n\t"))
	}
	want, err := fwzip.Zip(current)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, frameworkZip) {
		t.Fatal("hershsrc.zip holds the right files but was not written by genframework; run: go generate ./internal/build")
	}
	if _, ok := embedded["go.mod"]; !ok || len(embedded) < 5 {
		t.Fatalf("the archive holds %d files and no go.mod?", len(embedded))
	}
	for p := range embedded {
		if strings.HasSuffix(p, "_test.go") {
			t.Errorf("the archive holds the test file %s", p)
		}
	}
}

func TestFwzipCollectRules(t *testing.T) {
	dir := t.TempDir()
	files := source.Files{
		"go.mod":               "module example.com/fw\n",
		"go.sum":               "",
		"a.go":                 "package fw\n",
		"a_test.go":            "package fw\n",
		"README.md":            "docs\n",
		"internal/x/x.go":      "package x\n",
		"testdata/t.go":        "package t\n",
		"vendor/v/v.go":        "package v\n",
		".hidden/h.go":         "package h\n",
		"_skip/s.go":           "package s\n",
		"nested/go.mod":        "module example.com/nested\n",
		"nested/n.go":          "package nested\n",
		"internal/x/x_test.go": "package x\n",
	}
	if err := source.WriteTree(filepath.Join(dir, "fw"), "", files); err != nil {
		t.Fatal(err)
	}
	got, err := fwzip.Collect(filepath.Join(dir, "fw"))
	if err != nil {
		t.Fatal(err)
	}
	want := source.Files{"go.mod": files["go.mod"], "go.sum": "", "a.go": files["a.go"], "internal/x/x.go": files["internal/x/x.go"]}
	if d := fwzip.Diff(want, got); len(d) > 0 {
		t.Fatalf("Collect differs: %v", d)
	}
	z1, _ := fwzip.Zip(got)
	z2, _ := fwzip.Zip(got)
	if !bytes.Equal(z1, z2) {
		t.Fatal("Zip is not deterministic")
	}
	back, err := fwzip.Unzip(z1)
	if err != nil || len(fwzip.Diff(got, back)) > 0 {
		t.Fatalf("Unzip(Zip(x)) != x: %v", err)
	}
	if _, err := fwzip.Collect(filepath.Join(dir, "fw", "internal")); err == nil {
		t.Fatal("Collect of a folder with no go.mod succeeded")
	}
}

func TestExtractFramework(t *testing.T) {
	dir := t.TempDir()
	fw, err := extractFramework(dir)
	if err != nil {
		t.Fatal(err)
	}
	version, err := FrameworkVersion()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(fw) != version {
		t.Fatalf("extracted to %s, want a folder named %s", fw, version)
	}
	embedded, _ := fwzip.Unzip(frameworkZip)
	check := func() {
		t.Helper()
		have, _, err := source.ReadTree(fw)
		if err != nil {
			t.Fatal(err)
		}
		if d := fwzip.Diff(embedded, have); len(d) > 0 {
			t.Fatalf("extracted framework differs: %v", d)
		}
	}
	check()

	// Again: kept as is.
	if again, err := extractFramework(dir); err != nil || again != fw {
		t.Fatalf("second extract = %s, %v", again, err)
	}
	check()

	// Damaged: restored.
	if err := os.WriteFile(filepath.Join(fw, "config.go"), []byte("package hersh // edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fw, "extra.go"), []byte("package hersh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := extractFramework(dir); err != nil {
		t.Fatal(err)
	}
	check()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("framework folder holds %d entries, want 1", len(ents))
	}
}
