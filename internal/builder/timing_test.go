package builder

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/gomod"
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
	runc, _ := newTestBuilder(t, Options{Runtime: driver.RuntimeRunc})
	runsc, _ := newTestBuilder(t, Options{Runtime: driver.RuntimeRunsc})

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
	// command (its start and removal), and the same build in one runsc
	// sandbox that stays up between builds (docker exec), the way out
	// BENCHMARKS.md discusses.
	trivial := func(string) error {
		var log strings.Builder
		src := t.TempDir()
		if err := runsc.runGo(context.Background(), goJob{name: "timing", owner: "timing", src: src, modFlag: "-mod=mod", args: []string{"version"}}, &log); err != nil {
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
		{name: "build sandbox, runc", build: sandbox(runc)},
		{name: "build sandbox, runsc", build: sandbox(runsc)},
		{name: "runsc sandbox, go version", build: trivial},
		{name: "one runsc sandbox kept up", build: longLived(t, runsc)},
		{name: "one runc sandbox kept up", build: longLived(t, runc)},
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

// longLived starts one build sandbox, under b's runtime, with the build's mounts that
// stays up (its helper waits on stdin), and returns a build that runs go
// build in it with docker exec. Measurement only: the Host runs a fresh
// sandbox per build.
func longLived(t *testing.T, b *Builder) func(string) error {
	t.Helper()
	ctx := context.Background()
	image, err := b.sandbox(ctx, asLimiter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	cache, mods, err := b.userCaches("timing-kept-" + b.opts.Runtime)
	if err != nil {
		t.Fatal(err)
	}
	src, out := filepath.Join(t.TempDir(), "src"), t.TempDir()
	os.Chmod(out, 0o777)
	files := helloFiles()
	gm, err := gomod.BuildGoMod([]byte(files[source.GoModName]), FrameworkModule, sbFramework, frameworkGoLine())
	if err != nil {
		t.Fatal(err)
	}
	files[source.GoModName] = string(gm)
	if err := source.WriteTree(src, "", files); err != nil {
		t.Fatal(err)
	}
	// The sandbox's user reads it (the builder's own copies are made so).
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			mode := os.FileMode(0o644)
			if d.IsDir() {
				mode = 0o755
			}
			os.Chmod(p, mode)
		}
		return nil
	})
	name := "hershy-build-timing-" + rand.Text()[:8]
	args := []string{"run", "-d", "-i", "--name", name, "--runtime", b.opts.Runtime, "--network", "none", "--read-only",
		"--tmpfs", "/tmp:size=512m", "--user", fmt.Sprintf("%d:%d", buildUID, buildGID), "-w", sbSrc,
		"-v", filepath.Clean(b.goRoot) + ":" + sbGoRoot + ":ro", "-v", b.framework + ":" + sbFramework + ":ro",
		"-v", src + ":" + sbSrc + ":ro", "-v", b.opts.SharedCacheDir + ":" + sbShared + ":ro",
		"-v", cache + ":" + sbUser, "-v", mods + ":" + sbModCache, "-v", out + ":" + sbOut}
	for _, e := range []string{"PATH=" + sbGoRoot + "/bin", "HOME=/tmp", "XDG_CONFIG_HOME=" + telemetryOff, "GOROOT=" + sbGoRoot,
		"GOCACHE=/tmp/gocache", "GOCACHEPROG=" + sbHelper + " -w " + sbUser + " -r " + sbShared, "GOMODCACHE=" + sbModCache,
		"GOPATH=/tmp/gopath", "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=readonly -trimpath -buildvcs=false", "GOTOOLCHAIN=local",
		"GOENV=off", "GOWORK=off", "CGO_ENABLED=0"} {
		args = append(args, "-e", e)
	}
	args = append(args, image, sbHelper, "-w", sbUser, "-r", sbShared)
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	return func(main string) error {
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(main), 0o644); err != nil {
			return err
		}
		out, err := exec.Command("docker", "exec", name, sbGoRoot+"/bin/go", "build", "-ldflags=-s -w", "-o", sbOut+"/app", ".").CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker exec go build: %v: %s", err, out)
		}
		return nil
	}
}
