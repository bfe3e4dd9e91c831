package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/alerts"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// inbox is an in-memory webhook receiver: a RoundTripper that checks each
// delivery's signature with its webhook's secret (by URL) and keeps the
// events, answering the statuses queued for a URL first (200 after).
type inbox struct {
	t       *testing.T
	mu      sync.Mutex
	secrets map[string]string
	fail    map[string][]int
	got     map[string][]alerts.Event
}

func newInbox(t *testing.T) *inbox {
	return &inbox{t: t, secrets: map[string]string{}, fail: map[string][]int{}, got: map[string][]alerts.Event{}}
}

func (b *inbox) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	url := req.URL.String()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := alerts.Verify(b.secrets[url], req.Header.Get(alerts.SignatureHeader), body, time.Now()); err != nil {
		b.t.Errorf("delivery to %s: %v", url, err)
	}
	status := http.StatusNoContent
	if q := b.fail[url]; len(q) > 0 {
		status, b.fail[url] = q[0], q[1:]
	} else {
		var ev alerts.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			b.t.Errorf("delivery to %s: %v", url, err)
		}
		b.got[url] = append(b.got[url], ev)
	}
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}

// kinds lists the kinds a URL received, in order.
func (b *inbox) kinds(url string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, ev := range b.got[url] {
		out = append(out, string(ev.Kind))
	}
	return out
}

func (b *inbox) add(t *testing.T, h *host.Host, req host.WebhookRequest) store.Webhook {
	t.Helper()
	w, err := h.AddWebhook(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.secrets[w.URL] = w.Secret
	b.mu.Unlock()
	return w
}

// TestWebhookAlerts: each alert reaches the webhooks that want it and no
// other (the program's own, its owner's, the admin's; not another user's),
// signed; a crash loop is told once per window; a failed build is told; a
// receiver's 5xx is retried and every attempt is logged; a program's own
// webhooks go with it.
func TestWebhookAlerts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := hosttest.OpenFake(t, func(o *host.Options) { o.Alerts.RetryBase = time.Second })
		b := newInbox(t)
		h.SetAlertTransport(b)
		ctx := context.Background()
		id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(1)})
		other := createProgram(t, h, host.CreateRequest{UserID: "bob", Files: hosttest.CounterSource(2)})

		all := b.add(t, h, host.WebhookRequest{UserID: "alice", URL: "https://alice.example/all"})
		loop := b.add(t, h, host.WebhookRequest{UserID: "alice", ProgramID: id, URL: "https://alice.example/loop",
			Events: []string{"crash_loop"}, CrashLoop: alerts.LoopRule{Crashes: 2, Window: 10 * time.Minute}})
		b.add(t, h, host.WebhookRequest{UserID: "bob", URL: "https://bob.example/all"})
		b.add(t, h, host.WebhookRequest{UserID: "admin", URL: "https://ops.example/all", Events: []string{"crashed", "build_failed"}})
		b.fail["https://ops.example/all"] = []int{503, 500}

		if _, err := h.AddWebhook(ctx, host.WebhookRequest{UserID: "bob", ProgramID: id, URL: "https://bob.example/x"}); !errors.Is(err, host.ErrNotFound) {
			t.Fatalf("a webhook on another user's program: %v", err)
		}
		for _, bad := range []host.WebhookRequest{
			{UserID: "alice", URL: "http://127.0.0.1:9/"},
			{UserID: "alice", URL: "http://169.254.169.254/latest/meta-data/"},
			{UserID: "alice", URL: "https://ok.example/", Events: []string{"everything"}},
			{UserID: "alice", URL: "https://ok.example/", CrashLoop: alerts.LoopRule{Crashes: 1, Window: time.Minute}},
		} {
			if _, err := h.AddWebhook(ctx, bad); !errors.Is(err, host.ErrInvalid) {
				t.Errorf("AddWebhook(%+v): %v, want ErrInvalid", bad, err)
			}
		}

		startProgram(t, h, id)
		startProgram(t, h, other)
		settle(t, h, id, lifecycle.Ready)
		settle(t, h, other, lifecycle.Ready)
		for range 2 {
			hosttest.WatcherSend(t, h, id, "crash")
			hosttest.WaitState(t, h, id, lifecycle.Error, 30*time.Second)
			settle(t, h, id, lifecycle.Ready)
		}
		// A stop is no crash.
		if _, err := h.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		settle(t, h, id, lifecycle.Stopped)

		// A source that does not build.
		bad := source.Files{"main.go": "package main\n\nfunc main() {\n", "go.mod": hosttest.CounterSource(3)["go.mod"]}
		broken := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: bad})
		startProgram(t, h, broken)
		settle(t, h, broken, lifecycle.Error)
		time.Sleep(time.Minute) // the retries' back-off, in the bubble's time
		synctest.Wait()

		want := map[string]string{
			"https://alice.example/all":  "crashed crashed build_failed",
			"https://alice.example/loop": "crash_loop",
			"https://bob.example/all":    "",
			"https://ops.example/all":    "crashed crashed build_failed",
		}
		for url, kinds := range want {
			if got := strings.Join(b.kinds(url), " "); got != kinds {
				t.Errorf("%s received %q, want %q", url, got, kinds)
			}
		}
		b.mu.Lock()
		crash, lp := b.got["https://alice.example/all"][0], b.got["https://alice.example/loop"][0]
		b.mu.Unlock()
		if crash.ProgramID != id || crash.UserID != "alice" || crash.ExitCode == nil || *crash.ExitCode != 3 || crash.ID == "" {
			t.Errorf("crash event %+v", crash)
		}
		if lp.Crashes != 2 || lp.WindowSeconds != 600 {
			t.Errorf("crash loop event %+v", lp)
		}

		// The admin's receiver failed twice per event before taking it:
		// three attempts each, all logged.
		ops, _ := h.Webhooks(ctx, "admin")
		ds, err := h.Deliveries(ctx, ops[0].ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		outcomes := map[string]int{}
		for _, d := range ds {
			outcomes[d.Outcome]++
		}
		if outcomes["retrying"] != 2 || outcomes["delivered"] != 3 || len(ds) != 5 {
			t.Errorf("the admin's delivery log: %v", outcomes)
		}

		// A ping is logged like any delivery.
		if _, err := h.PingWebhook(ctx, all.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := b.kinds(all.URL); got[len(got)-1] != "ping" {
			t.Errorf("after a ping: %v", got)
		}

		// The program's own webhook goes with it; the user's stays.
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Webhook(ctx, loop.ID); !errors.Is(err, host.ErrNotFound) {
			t.Errorf("a deleted program's webhook: %v", err)
		}
		if _, err := h.Webhook(ctx, all.ID); err != nil {
			t.Errorf("the user's webhook: %v", err)
		}
	})
}

// TestWebhookQuota: a user's webhooks are capped.
func TestWebhookQuota(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := hosttest.OpenFake(t, func(o *host.Options) { o.Alerts.MaxWebhooks = 2 })
		ctx := context.Background()
		for i := range 3 {
			_, err := h.AddWebhook(ctx, host.WebhookRequest{UserID: "alice", URL: "https://a.example/" + string(rune('a'+i))})
			if want := i == 2; errors.Is(err, host.ErrQuota) != want {
				t.Fatalf("webhook %d: %v", i+1, err)
			}
		}
	})
}

// TestStateNearlyFullAlert: a /state past 90% of its cap is told once,
// and again only after it went back under 80%.
func TestStateNearlyFullAlert(t *testing.T) {
	f := hosttest.NewFake(t, fake.Options{})
	h := f.Open(t, t.TempDir(), cappedState(t), func(o *host.Options) {
		o.Alerts.StateEvery = 20 * time.Millisecond
		o.Alerts.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	b := newInbox(t)
	h.SetAlertTransport(b)
	ctx := context.Background()
	id := createProgram(t, h, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0), Options: host.ProgramOptions{StateBytes: testStateCap}})
	defer h.Delete(ctx, id)
	url := "http://127.0.0.1:9/state"
	b.add(t, h, host.WebhookRequest{UserID: "alice", URL: url, Events: []string{"state_nearly_full"}})
	limit := h.StateLimit(stateOf(t, h, id))
	big := filepath.Join(h.ProgramDir(id), "state", "big")
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); len(b.kinds(url)) != n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d alerts, want %d", len(b.kinds(url)), n)
			}
		}
	}
	// write fills /state until its usage, as the Host reads it, reaches
	// frac of the cap (the filesystem's own blocks count too).
	write := func(frac float64) {
		t.Helper()
		f, err := os.OpenFile(big, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for {
			f.Sync()
			u, _ := h.StateUsage(stateOf(t, h, id))
			if float64(u.Used) >= frac*float64(u.Used+u.Avail) {
				return
			}
			if _, err := f.Write(chunk); err != nil {
				t.Fatalf("filling /state to %.0f%%: %v (used %d of %d)", 100*frac, err, u.Used, u.Limit)
			}
		}
	}
	write(0.5)
	time.Sleep(200 * time.Millisecond) // ten readings
	waitFor(0)
	limit = h.StateLimit(stateOf(t, h, id))
	write(0.95)
	waitFor(1)
	time.Sleep(200 * time.Millisecond) // still full: no second alert
	waitFor(1)
	write(0.3)
	time.Sleep(200 * time.Millisecond)
	write(0.95)
	waitFor(2)
	b.mu.Lock()
	ev := b.got[url][0]
	b.mu.Unlock()
	if ev.Kind != alerts.StateNearlyFull || ev.StateLimit != limit || ev.StateUsed < (ev.StateUsed+ev.StateAvail)*9/10 || ev.ProgramID != id {
		t.Errorf("event %+v", ev)
	}
}
