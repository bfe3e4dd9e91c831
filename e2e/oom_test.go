package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// TestOOMUnderLoad: a program that takes more memory than its limit, while
// others run, is killed by the kernel; the Host records why, counts the
// restart and restarts it with the documented back-off (1 s, then 2 s),
// and the programs around it are not touched.
func TestOOMUnderLoad(t *testing.T) { forEachRuntime(t, testOOMUnderLoad) }

func testOOMUnderLoad(t *testing.T, rt string) {
	h := startHost(t, rt)
	alice := h.user("alice")
	counter := readSource(t, filepath.Join(examplesDir, "simple-counter"))
	var load []*program
	for _, name := range []string{"load-1", "load-2", "load-3"} {
		load = append(load, h.deploy(t, alice, name, client.SourceRequest{SrcFiles: counter}))
	}
	eater := h.deploy(t, alice, "eater", client.SourceRequest{SrcFiles: readSource(t, "testdata/probe"), MemoryBytes: 64 << 20})
	for _, p := range append(load, eater) {
		p.waitState("Ready", 3*time.Minute)
	}
	for i := 1; i <= 2; i++ {
		eater.send("eat 200")
		waitRestarted(t, eater, i)
	}
	// The history says why, each time, and how long the Host waited (the
	// program's view describes its current run: the exit is history).
	// runc: the engine flags the memory kill. runsc: the kill takes the
	// sandbox down, and the engine may only see exit 137.
	delays := restartDelays(t, eater, func(reason string) bool {
		return strings.Contains(reason, "code 137") && (strings.Contains(reason, "OOM killed") || rt == "runsc")
	})
	t.Logf("restart delays after the memory kills: %v", delays)
	if len(delays) != 2 || delays[0] < 800*time.Millisecond || delays[1] < 1600*time.Millisecond {
		t.Errorf("restart delays %v, want two, at least 0.8 s then 1.6 s", delays)
	}
	for _, p := range load {
		if got := p.get(); got.State != "Ready" || got.RestartCount != 0 {
			t.Errorf("%s beside the memory kills: %s, %d restarts", p.name, got.State, got.RestartCount)
		}
	}
}
