package proxybench

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// fixture is a stand-in Host API (/healthz and the proxy route, which
// answers itself) and a stand-in program reached by Dial, both on
// loopback, counting what each received.
type fixture struct {
	target                  Target
	proxied, direct, health atomic.Int64
	status                  atomic.Int64 // the program's answer (default 200)
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{}
	f.status.Store(http.StatusOK)
	program := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/watcher/status" {
			http.NotFound(w, r)
			return
		}
		f.direct.Add(1)
		w.WriteHeader(int(f.status.Load()))
		io.WriteString(w, `{"isRunning":true}`)
	}))
	t.Cleanup(program.Close)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			f.health.Add(1)
			io.WriteString(w, `{"status":"ok"}`)
		case r.URL.Path == "/programs/p1/proxy/watcher/status" && r.Header.Get("Authorization") == "Bearer tok":
			f.proxied.Add(1)
			w.WriteHeader(int(f.status.Load()))
			io.WriteString(w, `{"isRunning":true}`)
		default:
			http.Error(w, "no", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(api.Close)
	addr := program.Listener.Addr().String()
	f.target = Target{API: api.URL, Token: "tok", ProgramID: "p1", Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	return f
}

func TestRun(t *testing.T) {
	f := newFixture(t)
	o := Options{Requests: 50, Concurrency: 4, Rounds: 2, RoundRequests: 100}
	r, err := Run(context.Background(), f.target, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.ProxiedP50 <= 0 || r.DirectP50 <= 0 || r.HealthzP50 <= 0 || r.ProxiedRPS <= 0 || r.DirectRPS <= 0 || r.Concurrency != 4 {
		t.Fatalf("result %+v", r)
	}
	if r.Overhead != r.ProxiedP50-r.DirectP50-r.HealthzP50 || r.Ratio <= 0 {
		t.Errorf("derived figures %+v", r)
	}
	// Warm-up (2 per client), latency, throughput rounds.
	want := int64(2*o.Concurrency + o.Requests + o.Rounds*o.RoundRequests)
	if f.proxied.Load() != want || f.direct.Load() != want || f.health.Load() != int64(1+o.Requests) {
		t.Errorf("requests: proxied %d, direct %d (want %d each), healthz %d (want %d)",
			f.proxied.Load(), f.direct.Load(), want, f.health.Load(), 1+o.Requests)
	}
	if !strings.Contains(r.String(), "ratio") {
		t.Errorf("String: %s", r)
	}
}

// TestRunRefuses: bad targets and failing answers are errors, never a
// figure.
func TestRunRefuses(t *testing.T) {
	f := newFixture(t)
	small := Options{Requests: 5, Concurrency: 2, Rounds: 1}
	for name, mod := range map[string]func(*Target, *Options){
		"not loopback":   func(tg *Target, _ *Options) { tg.API = "http://192.0.2.1:18080" },
		"a name":         func(tg *Target, _ *Options) { tg.API = "http://example.com:18080" },
		"https":          func(tg *Target, _ *Options) { tg.API = strings.Replace(tg.API, "http:", "https:", 1) },
		"a path":         func(tg *Target, _ *Options) { tg.API += "/api" },
		"no dial":        func(tg *Target, _ *Options) { tg.Dial = nil },
		"no program":     func(tg *Target, _ *Options) { tg.ProgramID = "" },
		"another path":   func(_ *Target, o *Options) { o.Path = "/programs" },
		"a wrong token":  func(tg *Target, _ *Options) { tg.Token = "nope" },
		"an unknown one": func(tg *Target, _ *Options) { tg.ProgramID = "p2" },
	} {
		tg, o := f.target, small
		mod(&tg, &o)
		if _, err := Run(context.Background(), tg, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	f.status.Store(http.StatusServiceUnavailable)
	if _, err := Run(context.Background(), f.target, small); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503 answer: %v", err)
	}
	f.status.Store(http.StatusOK)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, f.target, small); err == nil {
		t.Error("an ended context: no error")
	}
}
