package builder

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/source"
)

// TestBuildTimings measures what the build sandbox costs: a warm rebuild
// of a small hersh program after a one-line change, in the sandbox under
// runc and under runsc, against the same go build run directly on the
// Host (the first Hosts' way, and the baseline), interleaved in one run.
// Opt-in, as it is a measurement and not a check:
//
//	HERSHY_BUILD_TIMINGS=1 go test ./internal/build -run Timings -v
func TestBuildTimings(t *testing.T) {
	if os.Getenv("HERSHY_BUILD_TIMINGS") == "" {
		t.Skip("set HERSHY_BUILD_TIMINGS=1 to measure")
	}
	const rounds = 5
	// Each way has a Builder of its own (so its own user caches and kept
	// sandbox): one-shot sandboxes (keeping off) and kept-up ones (the
	// Host's default), under each runtime.
	runc, _ := newTestBuilder(t, Options{Runtime: driver.RuntimeRunc, KeepSandbox: -1})
	runsc, _ := newTestBuilder(t, Options{Runtime: driver.RuntimeRunsc, KeepSandbox: -1})
	keptRunc, _ := newTestBuilder(t, Options{Runtime: driver.RuntimeRunc})
	keptRunsc, _ := newTestBuilder(t, Options{Runtime: driver.RuntimeRunsc})

	// The baseline: go build on the Host, the framework by a replace, its
	// own warm cache.
	dir := t.TempDir()
	files := helloFiles()
	files["go.mod"] = "module example.com/hello\n\ngo 1.25\n\nrequire " + FrameworkModule + " v0.0.0\n\nreplace " + FrameworkModule + " => " + runc.framework + "\n"
	if err := source.WriteTree(filepath.Join(dir, "src"), "", files); err != nil {
		t.Fatal(err)
	}
	host := func(main string) error {
		os.WriteFile(filepath.Join(dir, "src", "main.go"), []byte(main), 0o600)
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "app"), ".")
		cmd.Dir = filepath.Join(dir, "src")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off", "GOPROXY=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	sandbox := func(b *Builder) func(string) error {
		return func(main string) error {
			f := helloFiles()
			f["main.go"] = main
			_, log, err := compile(t, b, f)
			if err != nil {
				return fmt.Errorf("%v\n%s", err, log)
			}
			return nil
		}
	}
	// What the runsc figure is made of: a sandbox that runs a trivial go
	// command (its start and removal).
	trivial := func(string) error {
		var log strings.Builder
		in := t.TempDir()
		os.Mkdir(filepath.Join(in, "src"), 0o755)
		if err := runsc.runGo(context.Background(), goJob{name: "timing", owner: "timing", in: in, modFlag: "-mod=mod", args: []string{"version"}}, &log); err != nil {
			return fmt.Errorf("%v\n%s", err, log.String())
		}
		return nil
	}
	ways := []struct {
		name  string
		build func(string) error
		took  []time.Duration
	}{
		{name: "go build on the Host", build: host},
		{name: "new sandbox each, runc", build: sandbox(runc)},
		{name: "new sandbox each, runsc", build: sandbox(runsc)},
		{name: "runsc sandbox, go version", build: trivial},
		{name: "kept sandbox, runsc", build: sandbox(keptRunsc)},
		{name: "kept sandbox, runc", build: sandbox(keptRunc)},
	}
	for round := range rounds + 1 {
		for i := range ways {
			main := helloMain + fmt.Sprintf("\nvar _ = %d\n", round) // a change: main recompiles and relinks
			start := time.Now()
			if err := ways[i].build(main); err != nil {
				t.Fatalf("%s: %v", ways[i].name, err)
			}
			if round > 0 { // round 0 warms every cache
				ways[i].took = append(ways[i].took, time.Since(start))
			}
		}
	}
	median := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	base := median(ways[0].took)
	for _, w := range ways {
		m := median(w.took)
		t.Logf("%-26s median %6s  (%.1fx the Host)  all %v", w.name, m.Round(time.Millisecond), float64(m)/float64(base), w.took)
	}
}
