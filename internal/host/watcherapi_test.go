package host

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/logstore"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/testenv"
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
			err := probeReady(ctx, client, "cid")
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

// seedProgram is a program written to the seed's WatcherAPI contract
// (testdata/seed): net/http only, /watcher/status but no /watcher/ready;
// it logs every request it receives.
func seedProgram(t *testing.T) source.Files {
	t.Helper()
	main, err := os.ReadFile("testdata/seed/main.go")
	if err != nil {
		t.Fatal(err)
	}
	return source.Files{"main.go": string(main), "go.mod": "module example.com/seed\n\ngo 1.25\n"}
}

// TestSeedContractProgramBecomesReady: a Go-source program without
// /watcher/ready, built and run by the Host, becomes Ready through the
// fallback to /watcher/status, under both runtimes.
func TestSeedContractProgramBecomesReady(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			d := testenv.Engine(t, rt)
			h := openHost(t, t.TempDir(), rt, d)
			defer h.Close()
			ctx := context.Background()
			p, err := h.Create(ctx, CreateRequest{UserID: "alice", Files: seedProgram(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Delete(ctx, p.ID)
			if _, err := h.Start(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
			waitState(t, h, p.ID, lifecycle.Ready, 3*time.Minute)
			if st := watcherGet(t, h, p.ID, "/watcher/status"); st["isRunning"] != true {
				t.Fatalf("status %v", st)
			}
			// The probe asked /watcher/ready (404), then /watcher/status.
			var lines []string
			h.Logs(ctx, p.ID, logstore.Query{}, func(l logstore.Line) error { lines = append(lines, l.Text); return nil })
			all := strings.Join(lines, "\n")
			ready := strings.Index(all, "seen GET /watcher/ready")
			status := strings.Index(all, "seen GET /watcher/status")
			if ready < 0 || status < ready {
				t.Fatalf("the program's log does not show the probe's fallback:\n%s", all)
			}
		})
	}
}
