package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
)

// testWatcher is a program for the fake engine that serves a WatcherAPI
// and tells the test what reached it: every request (with the headers and
// the body size it got), and every connection, open or closed. The Host's
// readiness probe asks /watcher/ready only; any other request came through
// the proxy (or the test's direct client), and so did its connection.
type testWatcher struct {
	ignoreTerm bool          // SIGTERM does nothing (a stop waits out its grace)
	release    chan struct{} // closed (let) to let /watcher/block and the stream's second event go
	letOnce    sync.Once

	mu    sync.Mutex
	seen  []seenRequest
	conns map[string]*seenConn // by the connection's remote address (unique per dial)
}

type seenRequest struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	BodyBytes                    int64
}

type seenConn struct {
	open, proxied bool
}

func newTestWatcher() *testWatcher {
	return &testWatcher{release: make(chan struct{}), conns: map[string]*seenConn{}}
}

// let releases what /watcher/block and /watcher/stream hold, now and
// from now on.
func (tw *testWatcher) let() { tw.letOnce.Do(func() { close(tw.release) }) }

// program serves the WatcherAPI at fake.WatcherAddr until the container
// stops (or, unless ignoreTerm, is asked to).
func (tw *testWatcher) program() fake.Program {
	return func(ctx context.Context, p *fake.Process) int {
		ln, err := p.Listen(fake.WatcherAddr)
		if err != nil {
			fmt.Fprintln(p.Stderr(), err)
			return 1
		}
		srv := &http.Server{Handler: tw, ConnState: tw.connState}
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.Serve(ln)
		}()
		defer func() {
			srv.Close()
			<-served
		}()
		term := p.Term()
		for {
			select {
			case <-ctx.Done():
				return 137
			case <-term:
				if !tw.ignoreTerm {
					return 0
				}
				term = nil
			}
		}
	}
}

func (tw *testWatcher) connState(c net.Conn, st http.ConnState) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	key := c.RemoteAddr().String()
	switch st {
	case http.StateNew:
		tw.conns[key] = &seenConn{open: true}
	case http.StateClosed, http.StateHijacked:
		if sc := tw.conns[key]; sc != nil {
			sc.open = false
		}
	}
}

func (tw *testWatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/watcher/ready" {
		io.WriteString(w, `{"ready":true}`)
		return
	}
	n, _ := io.Copy(io.Discard, r.Body)
	tw.mu.Lock()
	tw.seen = append(tw.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone(), n})
	if sc := tw.conns[r.RemoteAddr]; sc != nil {
		sc.proxied = true
	}
	tw.mu.Unlock()
	switch r.URL.Path {
	case "/watcher/stream":
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-tw.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	case "/watcher/block":
		select {
		case <-tw.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "released")
	default:
		http.SetCookie(w, &http.Cookie{Name: "program", Value: "set-by-the-program"})
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"host": r.Host, "path": r.URL.Path})
	}
}

// requests returns what reached the program so far (the probe's aside).
func (tw *testWatcher) requests() []seenRequest {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]seenRequest(nil), tw.seen...)
}

// openProxied counts the open connections that carried a request other
// than the readiness probe's.
func (tw *testWatcher) openProxied() int {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	n := 0
	for _, c := range tw.conns {
		if c.open && c.proxied {
			n++
		}
	}
	return n
}

// waitNoProxiedConns waits until no connection that carried a proxied
// request is open, and fails the test after a generous while.
func (tw *testWatcher) waitNoProxiedConns(t testing.TB, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); tw.openProxied() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d connections from the proxy still open in the program", what, tw.openProxied())
		}
	}
}
