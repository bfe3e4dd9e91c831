package genclient

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGeneratedClientFresh runs doc.go's go:generate command into a
// temporary folder and fails unless it makes client.gen.go byte for byte:
// the committed client is what the generator makes of the description now.
// Without the generator (no module proxy and not in the module cache) the
// test skips, or fails in CI.
func TestGeneratedClientFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	args := generateCommand(t)
	tool := ""
	for _, a := range args {
		if strings.Contains(a, "@") {
			tool = a
		}
	}
	if len(args) < 4 || args[0] != "go" || args[1] != "run" || tool == "" {
		t.Fatalf("doc.go's go:generate is not `go run tool@version ...`: %q", args)
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The generator, built at its pinned version into tmp (go install runs
	// outside any module, as `go run tool@version` does).
	install := exec.CommandContext(ctx, "go", "install", tool)
	install.Dir = tmp
	install.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("the generator %s cannot be had: %v\n%s", tool, err, out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Its flags and arguments as go generate gives them, run in tmp: the
	// config's output, relative, lands there. The paths of the config and
	// of the description are made absolute.
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	gen := exec.CommandContext(ctx, filepath.Join(tmp, path.Base(strings.SplitN(tool, "@", 2)[0])))
	gen.Dir = tmp
	rest := args[3:]
	for i, a := range rest {
		if i == len(rest)-1 || (i > 0 && rest[i-1] == "-config") {
			a = filepath.Join(here, a)
		}
		gen.Args = append(gen.Args, a)
	}
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(gen.Args, " "), err, out)
	}
	fresh, err := os.ReadFile(filepath.Join(tmp, "client.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatalf("client.gen.go is stale: the generator makes %d bytes of the description, the committed file has %d; run go generate ./internal/api/genclient\n%s",
			len(fresh), len(committed), firstDifference(committed, fresh))
	}
}

// generateCommand returns the words of doc.go's go:generate line.
func generateCommand(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "//go:generate "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatal("doc.go has no go:generate line")
	return nil
}

// firstDifference shows the first line where the two files differ.
func firstDifference(committed, fresh []byte) string {
	a := strings.Split(string(committed), "\n")
	b := strings.Split(string(fresh), "\n")
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  committed: %s\n  generated: %s", i+1, x, y)
		}
	}
	return ""
}
