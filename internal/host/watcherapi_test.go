package host

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProbeDecision: when the readiness probe calls a program ready, with
// a test server standing in for its WatcherAPI, reached the way the probe
// reaches a container (http://<id>.container/, dialled by the transport).
func TestProbeDecision(t *testing.T) {
	for _, c := range []struct {
		name          string
		ready, status int // 0: route absent (404 from the mux)
		want          bool
		askedStatus   bool // whether /watcher/status may be asked at all
	}{
		{"hersh program: ready route 200", 200, 0, true, false},
		{"seed program: no ready route, status 200", 0, 200, true, true},
		{"not yet: ready route 503, status 200", 503, 200, false, false},
		{"ready route 500", 500, 200, false, false},
		{"no ready route, status 503", 0, 503, false, true},
		{"no ready route, no status route", 0, 0, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]int{}
			mux := http.NewServeMux()
			if c.ready != 0 {
				mux.HandleFunc("GET /watcher/ready", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(c.ready) })
			}
			if c.status != 0 {
				mux.HandleFunc("GET /watcher/status", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(c.status) })
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen[r.URL.Path]++
				mu.Unlock()
				mux.ServeHTTP(w, r)
			}))
			defer srv.Close()
			tr := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				if !strings.HasSuffix(addr, containerSuffix+":80") {
					t.Errorf("the probe dialled %q", addr)
				}
				return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
			}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}

			if err := readyOnce(context.Background(), client, watcherURL("cid")); (err == nil) != c.want {
				t.Fatalf("readyOnce: %v, want ready=%v", err, c.want)
			}
			// The whole probe agrees: it returns at once when ready, and
			// gives up with the reason when its time is up.
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := probeReady(ctx, client, "cid", nil)
			if (err == nil) != c.want {
				t.Fatalf("probeReady: %v, want ready=%v", err, c.want)
			}
			if !c.want && !strings.Contains(err.Error(), "answered") {
				t.Errorf("probeReady's error does not say what the program answered: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if seen["/watcher/ready"] == 0 {
				t.Error("/watcher/ready was never asked")
			}
			if !c.askedStatus && seen["/watcher/status"] != 0 {
				t.Errorf("/watcher/status asked %d times although /watcher/ready exists", seen["/watcher/status"])
			}
		})
	}
}
