// Package leakcheck fails a test binary whose goroutines outlive its
// tests. A package's TestMain calls Main; it is for packages whose tests
// run outside synctest bubbles (a bubble checks its own goroutines).
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// Main runs the tests and, when they pass, waits up to ten seconds for
// the goroutines they started to end; more than there were before fail
// the binary, with every goroutine's stack printed. It does not return.
func Main(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "%d goroutine(s) outlived the tests (%d before):\n%s\n", n-before, before, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}
