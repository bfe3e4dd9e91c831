package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// The proxy's upstreams (upstream.go): one transport per program
// container, connections kept alive across requests, and nothing kept for
// a program that left Ready or its container.

// proxiedHost GETs the program's /watcher/status through the API and
// returns the Host header the program saw (its container's name).
func proxiedHost(t *testing.T, e *fakeProxyEnv, id string) string {
	t.Helper()
	resp, b := send(t, "GET", e.srv.URL+"/programs/"+id+"/proxy/watcher/status", e.alice, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET status of %s: %s %s", id, resp.Status, b)
	}
	var out struct{ Host string }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Host
}

// countDials counts the driver's dials into containers from now on.
func countDials(d *fake.Driver) *atomic.Int64 {
	var n atomic.Int64
	d.SetHooks(fake.Hooks{Before: func(_ context.Context, c fake.Call) error {
		if c.Method == "DialContext" {
			n.Add(1)
		}
		return nil
	}})
	return &n
}

// TestProxyReusesConnections: requests one after another share one
// connection into the container; parallel ones open no more connections
// than there are callers.
func TestProxyReusesConnections(t *testing.T) {
	tw := newTestWatcher()
	e := newFakeProxyEnv(t, tw.program(), Options{})
	id := e.deploy("alice")
	dials := countDials(e.d)
	for range 50 {
		proxiedHost(t, e, id)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("50 requests in a row dialled %d times, want 1", n)
	}
	const callers = 8
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range 20 {
				resp, b := send(t, "GET", e.srv.URL+"/programs/"+id+"/proxy/watcher/status", e.alice, nil)
				if resp.StatusCode != 200 {
					t.Errorf("%s %s", resp.Status, b)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := dials.Load(); n > 1+callers {
		t.Errorf("%d parallel callers dialled %d times in all, want at most %d", callers, n, 1+callers)
	}
	if n := e.api.s.upstreams.count(); n != 1 {
		t.Errorf("%d upstreams for one program", n)
	}
}

// TestProxyUpstreamPerContainer: each program's requests reach its own
// container, and a restarted program's new container (a new network
// namespace) gets a new upstream: the old one is forgotten.
func TestProxyUpstreamPerContainer(t *testing.T) {
	e := newFakeProxyEnv(t, newTestWatcher().program(), Options{})
	a, b := e.deploy("alice"), e.deploy("alice")
	ca := e.waitContainer(a, func(c string) bool { return c != "" })
	cb := e.waitContainer(b, func(c string) bool { return c != "" })
	if got := proxiedHost(t, e, a); got != ca+".container" {
		t.Errorf("program a reached %s, want its container %s", got, ca)
	}
	if got := proxiedHost(t, e, b); got != cb+".container" {
		t.Errorf("program b reached %s, want its container %s", got, cb)
	}
	if n := e.api.s.upstreams.count(); n != 2 {
		t.Errorf("%d upstreams for two programs", n)
	}
	old := e.api.s.upstreams.byID[a] // read under no lock: nothing else runs now

	if _, err := e.h.Restart(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	ca2 := e.waitContainer(a, func(c string) bool { return c != "" && c != ca })
	if !old.retired.Load() {
		t.Error("the old container's upstream was not retired")
	}
	if got := proxiedHost(t, e, a); got != ca2+".container" {
		t.Errorf("the restarted program reached %s, want its new container %s", got, ca2)
	}
	if n := e.api.s.upstreams.count(); n != 2 {
		t.Errorf("%d upstreams for two programs after a restart", n)
	}

	// Deleted: nothing kept.
	for _, id := range []string{a, b} {
		if err := e.h.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); e.api.s.upstreams.count() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstreams kept for deleted programs", e.api.s.upstreams.count())
		}
	}
}

// TestProxyRetiresConnections: when a program leaves Ready its upstream
// is forgotten and its connections into the container are closed at once,
// even while the container still runs (here it ignores SIGTERM, so it
// lives on through the stop's grace period): the idle one at the change,
// the one a request in flight holds when that request ends.
func TestProxyRetiresConnections(t *testing.T) {
	tw := newTestWatcher()
	tw.ignoreTerm = true
	e := newFakeProxyEnv(t, tw.program(), Options{}, func(o *host.Options) { o.StopGrace = time.Hour })
	t.Cleanup(tw.let) // first: the held answer must not hold the servers' closing
	id := e.deploy("alice")
	cid := e.waitContainer(id, func(c string) bool { return c != "" })
	// The stop would wait an hour for the program, and the Host's Close
	// for the stop: the program dies before the Host closes.
	t.Cleanup(func() { e.d.Exit(cid, 137) })
	inflight := make(chan int, 1)
	go func() {
		r, _ := http.NewRequest("GET", e.srv.URL+"/programs/"+id+"/proxy/watcher/block", nil)
		r.Header.Set("Authorization", "Bearer "+e.alice)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			inflight <- 0
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	for deadline := time.Now().Add(10 * time.Second); tw.openProxied() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d proxied connections open, want 1 (the blocked request's)", tw.openProxied())
		}
	}
	proxiedHost(t, e, id) // a second connection, idle after this
	if n := tw.openProxied(); n != 2 {
		t.Fatalf("%d proxied connections open, want 2 (one blocked, one idle)", n)
	}

	if _, err := e.h.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	e.waitContainer(id, func(c string) bool { return c == "" }) // Stopping: the container runs on
	for deadline := time.Now().Add(10 * time.Second); tw.openProxied() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the program left Ready: %d proxied connections open, want 1 (the request in flight)", tw.openProxied())
		}
	}
	if n := e.api.s.upstreams.count(); n != 0 {
		t.Errorf("%d upstreams kept for a program that is not Ready", n)
	}
	tw.let()
	if code := <-inflight; code != 200 {
		t.Errorf("the request in flight ended with %d", code)
	}
	tw.waitNoProxiedConns(t, "after the request in flight")
	if pt, _ := e.h.ProxyTarget(context.Background(), id); pt.State != lifecycle.Stopping {
		t.Errorf("the program is %s; the test meant to look while it was Stopping", pt.State)
	}
}

// TestProxyCloseClosesConnections: Server.Close ends the proxy's
// connections into programs that keep running, and later requests are
// refused (503) instead of opening new ones.
func TestProxyCloseClosesConnections(t *testing.T) {
	tw := newTestWatcher()
	e := newFakeProxyEnv(t, tw.program(), Options{})
	id := e.deploy("alice")
	proxiedHost(t, e, id)
	if tw.openProxied() != 1 {
		t.Fatalf("%d proxied connections open, want 1", tw.openProxied())
	}
	e.api.Close()
	tw.waitNoProxiedConns(t, "after Close")
	resp, b := send(t, "GET", e.srv.URL+"/programs/"+id+"/proxy/watcher/status", e.alice, nil)
	checkError(t, "after Close", resp, b, http.StatusServiceUnavailable)
	if tw.openProxied() != 0 || e.api.s.upstreams.count() != 0 {
		t.Errorf("after Close: %d connections, %d upstreams", tw.openProxied(), e.api.s.upstreams.count())
	}
}

// TestProxyUpstreamLooksAgain: an upstream made for a container the Host
// no longer names (the program changed between the request's look-up and
// the upstream's creation, so no change was left to forget it) is dropped
// at once, and the request is told the program is not ready.
func TestProxyUpstreamLooksAgain(t *testing.T) {
	e := newFakeProxyEnv(t, newTestWatcher().program(), Options{})
	id := e.deploy("alice")
	cid := e.waitContainer(id, func(c string) bool { return c != "" })
	u := e.api.s.upstreams
	if _, err := u.get(context.Background(), id, "a-container-that-went"); !errors.Is(err, host.ErrNotReady) {
		t.Fatalf("an upstream for a gone container: %v, want ErrNotReady", err)
	}
	if n := u.count(); n != 0 {
		t.Fatalf("%d upstreams kept for a gone container", n)
	}
	if up, err := u.get(context.Background(), id, cid); err != nil || up.container != cid || u.count() != 1 {
		t.Fatalf("the current container: %v, %d upstreams", err, u.count())
	}
}

// TestProxyRetiredUpstreamKeepsNoConnection: a request that took its
// upstream just before the upstream was retired (and so opens a
// connection after the retirement closed the idle ones) closes that
// connection when it ends, instead of leaving it idle in a transport no one
// will use again.
func TestProxyRetiredUpstreamKeepsNoConnection(t *testing.T) {
	tw := newTestWatcher()
	e := newFakeProxyEnv(t, tw.program(), Options{})
	id := e.deploy("alice")
	cid := e.waitContainer(id, func(c string) bool { return c != "" })
	up, err := e.api.s.upstreams.get(context.Background(), id, cid)
	if err != nil {
		t.Fatal(err)
	}
	up.retire() // as a change does, between a request's look-up and its round trip
	req := serverRequest(t, "/programs/"+id+"/proxy/watcher/status", e.alice)
	req.SetPathValue("path", "watcher/status")
	w := &discardWriter{h: http.Header{}}
	up.rp.ServeHTTP(w, req)
	up.done()
	if w.code != 200 || tw.openProxied() > 1 {
		t.Fatalf("status %d, %d connections", w.code, tw.openProxied())
	}
	tw.waitNoProxiedConns(t, "after a request on a retired upstream")
}
