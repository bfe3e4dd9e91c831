package host_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestHealth: the Host says when the engine or the programs' runtime is
// gone and when they are back: a crashed engine is seen at once (its event
// stream breaks), a runtime taken away at the next check; programs that
// cannot start then say why, and start once the runtime is back.
func TestHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		t0 := time.Now()
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.HealthEvery = 10 * time.Second })
		hl := h.Health()
		if !hl.OK() || hl.Engine.Since != t0 || hl.Runtime.Name != h.Runtime() || hl.Runtime.Problem != "" {
			t.Fatalf("at open: %+v", hl)
		}

		d.Crash(nil)
		time.Sleep(100 * time.Millisecond) // far less than HealthEvery
		synctest.Wait()
		hl = h.Health()
		if hl.Engine.OK || !strings.Contains(hl.Engine.Problem, "does not answer") || hl.Runtime.OK || hl.OK() {
			t.Fatalf("a crashed engine is not seen at once: %+v", hl)
		}
		down := hl.Engine.Since
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if hl = h.Health(); hl.Engine.Since != down {
			t.Errorf("since moved while the engine stayed down: %v, then %v", down, hl.Engine.Since)
		}
		d.Restore()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if hl = h.Health(); !hl.OK() || !hl.Engine.Since.After(down) {
			t.Fatalf("the engine is back, the Host does not say so within a check: %+v", hl)
		}

		d.BreakRuntime(h.Runtime())
		time.Sleep(10 * time.Second)
		synctest.Wait()
		hl = h.Health()
		if !hl.Engine.OK || hl.Runtime.OK || !strings.Contains(hl.Runtime.Problem, h.Runtime()+" cannot run containers") {
			t.Fatalf("a missing runtime is not seen at the next check: %+v", hl)
		}
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		startProgram(t, h, id)
		time.Sleep(time.Second)
		synctest.Wait()
		if p := stateOf(t, h, id); p.State != lifecycle.Error || !strings.Contains(p.ErrorMsg, "missing") {
			t.Fatalf("a start without the runtime: %s %q", p.State, p.ErrorMsg)
		}
		d.FixRuntime(h.Runtime())
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if hl = h.Health(); !hl.OK() {
			t.Fatalf("the runtime is back, the Host does not say so: %+v", hl)
		}
		if p := settle(t, h, id, lifecycle.Ready); p.RestartCount == 0 {
			t.Errorf("Ready with no restart counted: %+v", p)
		}
		if _, err := h.Stop(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		settle(t, h, id, lifecycle.Stopped)
	})
}
