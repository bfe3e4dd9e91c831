package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/alerts"
	"github.com/hershyorg/hershy/internal/client"
)

// hookReceiver is a webhook receiver on loopback: it checks each
// delivery's signature and keeps the events; its first answers can be
// failures, to see the Host retry.
type hookReceiver struct {
	*httptest.Server
	t      *testing.T
	mu     sync.Mutex
	secret string
	fail   int // answers of 503 still to give
	events []alerts.Event
	bad    []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := alerts.Verify(r.secret, req.Header.Get(alerts.SignatureHeader), body, time.Now()); err != nil {
			r.bad = append(r.bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.fail > 0 {
			r.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev alerts.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			r.bad = append(r.bad, err.Error())
		}
		r.events = append(r.events, ev)
	}))
	t.Cleanup(r.Close)
	return r
}

// wait waits until an event of kind about program arrives and returns it.
func (r *hookReceiver) wait(kind alerts.Kind, program string, timeout time.Duration) alerts.Event {
	r.t.Helper()
	return r.waitFor(string(kind)+" of "+program, timeout, func(ev alerts.Event) bool {
		return ev.Kind == kind && ev.ProgramID == program
	})
}

// waitFor waits until an event that match accepts arrives and returns it.
func (r *hookReceiver) waitFor(what string, timeout time.Duration, match func(alerts.Event) bool) alerts.Event {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		var got []string
		for _, ev := range r.events {
			if match(ev) {
				r.mu.Unlock()
				return ev
			}
			got = append(got, string(ev.Kind)+" "+ev.ProgramID)
		}
		bad := r.bad
		r.mu.Unlock()
		if time.Now().After(deadline) {
			r.t.Fatalf("no alert %s after %s; received %v; refused %v", what, timeout, got, bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWebhookAlerts: through a real Host, a webhook registered with the
// CLI hears, signed, of a crash, a crash loop, a memory kill, a full
// /state and a failed build, with the receiver's first failure retried
// and every attempt in `hershy webhook deliveries`. The operator allowed
// loopback (--webhook-allow 127.0.0.1/32) for the receiver; the Host's own
// API stays refused, and so do private addresses.
func TestWebhookAlerts(t *testing.T) { forEachRuntime(t, testWebhookAlerts) }

func testWebhookAlerts(t *testing.T, rt string) {
	h := startHostWith(t, rt, []string{"--webhook-allow", "127.0.0.1/32", "--state-alert-every", "1s", "--state-bytes", "16MiB"}, nil)
	alice := h.user("alice")
	recv := newHookReceiver(t)

	out, _ := h.mustCLI(alice.token, "webhook", "add", recv.URL+"/hershy", "--crash-loop", "2/10m")
	m := regexp.MustCompile(`(?m)^webhook (wh_\S+): .*\n(?s:.*)^secret: (whsec_\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("webhook add printed:\n%s", out)
	}
	hookID := m[1]
	recv.mu.Lock()
	recv.secret, recv.fail = m[2], 1
	recv.mu.Unlock()

	// Refused: the Host's own API, a private address, a metadata address.
	for _, bad := range []string{h.url() + "/programs", "http://10.1.2.3/h", "http://169.254.169.254/latest/meta-data/"} {
		if out, errOut, err := h.cli(alice.token, "webhook", "add", bad); err == nil {
			t.Errorf("webhook add %s accepted:\n%s", bad, out)
		} else if !strings.Contains(errOut, "refused") {
			t.Errorf("webhook add %s: %s", bad, errOut)
		}
	}

	probe := readSource(t, "testdata/probe")
	p := h.deploy(t, alice, "alerted", client.SourceRequest{SrcFiles: probe, MemoryBytes: 64 << 20})
	p.waitState("Ready", 3*time.Minute)

	// Two crashes: each alerted, the second completes a crash loop.
	for i := 1; i <= 2; i++ {
		p.send("exit 3")
		waitRestarted(t, p, i)
	}
	crash := recv.wait(alerts.Crashed, p.id, time.Minute)
	if crash.ExitCode == nil || *crash.ExitCode != 3 || crash.UserID != "alice" {
		t.Errorf("crash alert %+v", crash)
	}
	loop := recv.wait(alerts.CrashLoop, p.id, time.Minute)
	if loop.Crashes != 2 || loop.WindowSeconds != 600 {
		t.Errorf("crash loop alert %+v", loop)
	}

	// A memory kill. Under runsc the engine may see only the exit code
	// 137 (the kill takes the sandbox down): then it is a crash with 137.
	p.send("eat 200")
	oom := recv.waitFor("of the memory kill", 2*time.Minute, func(ev alerts.Event) bool {
		if ev.ProgramID != p.id {
			return false
		}
		return ev.Kind == alerts.OOMKilled || (rt == "runsc" && ev.Kind == alerts.Crashed && ev.ExitCode != nil && *ev.ExitCode == 137)
	})
	if oom.ExitCode == nil || *oom.ExitCode != 137 {
		t.Errorf("memory kill alert %+v", oom)
	}
	waitRestarted(t, p, 3)

	// /state filled to the brim.
	p.send("fill 64")
	p.waitLogContains(time.Time{}, "probe-fill ", time.Minute)
	full := recv.wait(alerts.StateNearlyFull, p.id, time.Minute)
	if full.StateUsed == 0 || full.StateLimit != 16<<20 {
		t.Errorf("state alert %+v", full)
	}

	// A source that does not build.
	broken := map[string]string{"main.go": "package main\n\nfunc main() {\n", "go.mod": probe["go.mod"]}
	b := h.deploy(t, alice, "broken", client.SourceRequest{SrcFiles: broken})
	b.waitState("Error", 3*time.Minute)
	failed := recv.wait(alerts.BuildFailed, b.id, time.Minute)
	if !strings.Contains(failed.Message, "build failed") {
		t.Errorf("build alert %+v", failed)
	}

	// The log: the first delivery was answered 503 and retried.
	ds, err := alice.Deliveries(context.Background(), hookID, 200)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, d := range ds {
		outcomes[d.Outcome]++
	}
	if outcomes["retrying"] != 1 || outcomes["delivered"] < 5 || outcomes["failed"] != 0 {
		t.Errorf("delivery log outcomes %v", outcomes)
	}
	out, _ = h.mustCLI(alice.token, "webhook", "deliveries", hookID)
	if !strings.Contains(out, "retrying") || !strings.Contains(out, "503") || !strings.Contains(out, "crash_loop") {
		t.Errorf("webhook deliveries printed:\n%s", out)
	}
	recv.mu.Lock()
	if len(recv.bad) > 0 {
		t.Errorf("deliveries that did not verify: %v", recv.bad)
	}
	recv.mu.Unlock()
	h.mustCLI(alice.token, "webhook", "rm", hookID)
	if out, _ := h.mustCLI(alice.token, "webhook", "ls"); strings.Contains(out, hookID) {
		t.Errorf("after rm:\n%s", out)
	}
}

// waitRestarted waits until the program is Ready after its n-th automatic
// restart.
func waitRestarted(t *testing.T, p *program, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pr := p.get()
		if pr.RestartCount == n && pr.State == "Ready" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s with %d restarts, want Ready after restart %d: %s", p.name, pr.State, pr.RestartCount, n, pr.ErrorMsg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
