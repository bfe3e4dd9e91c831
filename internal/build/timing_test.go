package build

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBuildTimings reports how long Go-source compiles in the build sandbox
// take with a cold and a warm build cache. Opt-in:
// HERSHY_BUILD_TIMINGS=1 go test -run Timings -v
func TestBuildTimings(t *testing.T) {
	if os.Getenv("HERSHY_BUILD_TIMINGS") == "" {
		t.Skip("set HERSHY_BUILD_TIMINGS=1 to measure")
	}
	b, _ := newTestBuilder(t, Options{SharedCacheDir: filepath.Join(t.TempDir(), "shared")})
	measure := func(name string, main string) {
		files := helloFiles()
		if main != "" {
			files["main.go"] = main
		}
		start := time.Now()
		if _, log, err := compile(t, b, files); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, log)
		}
		t.Logf("%-34s %s", name, time.Since(start).Round(time.Millisecond))
	}
	measure("cold cache", "")
	measure("warm cache, same program", "")
	measure("warm cache, program changed", helloMain+"\nvar _ = 1\n")
}
