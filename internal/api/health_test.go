package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/host"
)

// TestHealthz: /healthz is 200 "ok" while the engine answers and has the
// runtime, and 503 "degraded" with the problem in words while it does not;
// the metrics say the same. Anyone may ask (a monitor has no token).
func TestHealthz(t *testing.T) {
	e := newEnv(t, func(o *host.Options) { o.HealthEvery = 20 * time.Millisecond })
	var body healthBody
	e.do("GET", "/healthz", "", "", 200, &body)
	if body.Status != "ok" || !body.Engine.OK || !body.Runtime.OK || body.Runtime.Name != e.h.Runtime() || body.CheckedAt.IsZero() {
		t.Fatalf("healthy: %+v", body)
	}
	metric := func(want string) {
		t.Helper()
		_, b := e.req("GET", "/metrics", e.admin, "")
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	metric("hershy_engine_up 1")
	metric(`hershy_runtime_up{runtime="` + e.h.Runtime() + `"} 1`)

	wait := func(code int) healthBody {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			resp, raw := e.req("GET", "/healthz", "", "")
			if resp.StatusCode == code {
				var b healthBody
				if err := json.Unmarshal(raw, &b); err != nil {
					t.Fatalf("/healthz: %v: %s", err, raw)
				}
				return b
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz never answered %d", code)
			}
		}
	}
	e.d.Crash(errors.New("dockerd killed"))
	body = wait(http.StatusServiceUnavailable)
	if body.Status != "degraded" || body.Engine.OK || !strings.Contains(body.Engine.Problem, "does not answer") || strings.Contains(body.Engine.Problem, "dockerd killed") {
		t.Errorf("engine down: %+v (the engine's own error stays in the log)", body)
	}
	metric("hershy_engine_up 0")
	e.d.Restore()
	wait(http.StatusOK)

	e.d.BreakRuntime(e.h.Runtime())
	body = wait(http.StatusServiceUnavailable)
	if !body.Engine.OK || body.Runtime.OK || !strings.Contains(body.Runtime.Problem, "cannot run containers") {
		t.Errorf("runtime gone: %+v", body)
	}
	metric(`hershy_runtime_up{runtime="` + e.h.Runtime() + `"} 0`)
	e.d.FixRuntime(e.h.Runtime())
	wait(http.StatusOK)
}
