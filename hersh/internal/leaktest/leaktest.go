// Package leaktest fails a test that leaves goroutines behind. It compares
// the goroutines alive after the test with those alive before it, giving
// late finishers a grace period, so it needs no list of known goroutines.
package leaktest

import (
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// Check snapshots the running goroutines and registers a cleanup that fails
// t if new goroutines are still alive after a grace period.
func Check(t testing.TB) {
	t.Helper()
	before := snapshot()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		var leaked []string
		for {
			leaked = leaked[:0]
			for id, stack := range snapshot() {
				if _, ok := before[id]; !ok && !ignorable(stack) {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		sort.Strings(leaked)
		t.Errorf("%d goroutine(s) leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	})
}

// ignorable reports goroutines owned by the runtime or the test framework
// that may start during a test without being a leak.
func ignorable(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run",
		"testing.tRunner",
		"testing.runFuzzing",
		"runtime.goexit0",
		"os/signal.signal_recv",
		"runtime.ensureSigM",
		"net/http.(*persistConn)", // idle client connections of the default transport
		"internal/poll.runtime_pollWait",
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "hersh") {
			return true
		}
	}
	return false
}

// snapshot maps goroutine id to its stack trace.
func snapshot() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	self := ""
	for i, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		// "goroutine 18 [running]:"
		fields := strings.Fields(header)
		if len(fields) < 2 {
			continue
		}
		if i == 0 {
			self = fields[1] // the goroutine taking the snapshot
		}
		out[fields[1]] = g
	}
	delete(out, self)
	return out
}
