// Package testenv is shared set-up for tests that need the real container
// engine. Outside CI such tests skip when no engine answers; in CI (the CI
// variable set) a missing engine fails them, so they never skip silently.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/build"
	"github.com/hershyorg/hershy/internal/runtime/docker"
)

// Engine returns a Docker driver whose engine has runtime rt registered.
func Engine(t testing.TB, rt string) *docker.Driver {
	t.Helper()
	d, err := docker.New()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = d.Check(ctx, rt)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the engine with runtime %s is required in CI: %v (run scripts/setup-engine.sh)", rt, err)
		}
		t.Skipf("no engine with runtime %s: %v (run scripts/setup-engine.sh)", rt, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// GoCaches points the builder at the go command's own caches, so a test's
// fresh data directory does not pay for a cold compile of the standard
// library.
func GoCaches(t testing.TB) build.Options {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("go env: %q", out)
	}
	return build.Options{GoCacheDir: f[0], GoModCacheDir: f[1]}
}
