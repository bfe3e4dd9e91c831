package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The proxy's defences, each with its attack, on the fake engine: the
// program is untrusted and sees exactly what the proxy sends it
// (testWatcher records it). Every case runs on /programs/{id}/proxy/ and on
// the program's proxy port, which serves the same proxy.

// proxyBases deploys a program of alice's on a Host whose programs run tw,
// with proxy ports on, and returns the env, the program id, its container
// and the two base URLs that reach its WatcherAPI.
func proxyBases(t *testing.T, tw *testWatcher) (e *fakeProxyEnv, id, cid string, bases map[string]string) {
	t.Helper()
	port := loopbackPort(t)
	e = newFakeProxyEnv(t, tw.program(), Options{PortRange: fmt.Sprintf("%d-%d", port, port)})
	id = e.deploy("alice")
	cid = e.waitContainer(id, func(cid string) bool { return cid != "" })
	for deadline := time.Now().Add(10 * time.Second); e.api.s.ports.port(id) != port; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("program %s got no proxy port", id)
		}
	}
	return e, id, cid, map[string]string{
		"route": e.srv.URL + "/programs/" + id + "/proxy",
		"port":  fmt.Sprintf("http://127.0.0.1:%d", port),
	}
}

// loopbackPort returns a loopback port that was free a moment ago.
func loopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// send sends a request to url with token (none when "") and header pairs,
// follows no redirect, and returns the answer and its body.
func send(t *testing.T, method, url, token string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestProxyStripsCredentials: the caller's token, cookies, proxy
// credentials, forwarding headers and hop-by-hop headers (with those its
// Connection header names) never reach the program; other headers and the
// query do, with the container as Host. The program's Set-Cookie never
// reaches the caller.
func TestProxyStripsCredentials(t *testing.T) {
	tw := newTestWatcher()
	e, _, cid, bases := proxyBases(t, tw)
	for name, base := range bases {
		before := len(tw.requests())
		resp, b := send(t, "GET", base+"/watcher/status?x=1&y=2", e.alice, nil,
			"Cookie", "session=s3cret",
			"Proxy-Authorization", "Basic czNjcmV0",
			"X-Forwarded-For", "10.1.2.3", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https",
			"Forwarded", "for=10.1.2.3",
			"Connection", "X-Hop", "X-Hop", "hop-by-hop",
			"X-Custom", "kept")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %s", name, resp.Status, b)
		}
		if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
			t.Errorf("%s: the program's Set-Cookie reached the caller: %q", name, c)
		}
		reqs := tw.requests()
		if len(reqs) != before+1 {
			t.Fatalf("%s: the program got %d requests, want 1", name, len(reqs)-before)
		}
		got := reqs[before]
		for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization", "X-Forwarded-For",
			"X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Hop"} {
			if v := got.Header.Values(h); len(v) != 0 {
				t.Errorf("%s: %s reached the program: %q", name, h, v)
			}
		}
		if got.Header.Get("X-Custom") != "kept" || got.Path != "/watcher/status" || got.RawQuery != "x=1&y=2" || got.Host != cid+".container" {
			t.Errorf("%s: the program got %s %s?%s Host %s, headers %v", name, got.Method, got.Path, got.RawQuery, got.Host, got.Header)
		}
	}
}

// TestProxyRefusesStrangers: without a valid token (401) or with another
// user's (404, as if the program did not exist) nothing reaches the
// program; the owner and the admin do.
func TestProxyRefusesStrangers(t *testing.T) {
	tw := newTestWatcher()
	e, _, _, bases := proxyBases(t, tw)
	for name, base := range bases {
		for _, c := range []struct {
			who, method, token string
			want               int
		}{
			{"nobody", "GET", "", 401},
			{"nobody", "POST", "", 401},
			{"forger", "GET", "hsy_" + strings.Repeat("0", 64), 401},
			{"bob", "GET", e.bob, 404},
			{"bob", "POST", e.bob, 404},
			{"alice", "GET", e.alice, 200},
			{"admin", "POST", e.admin, 200},
		} {
			resp, b := send(t, c.method, base+"/watcher/message?who="+c.who, c.token, strings.NewReader(`{"content":"x"}`),
				"Content-Type", "application/json")
			if resp.StatusCode != c.want {
				t.Errorf("%s: %s as %s: %s %s, want %d", name, c.method, c.who, resp.Status, b, c.want)
			}
		}
	}
	for _, r := range tw.requests() {
		if r.RawQuery != "who=alice" && r.RawQuery != "who=admin" {
			t.Errorf("a refused request reached the program: %s %s?%s", r.Method, r.Path, r.RawQuery)
		}
	}
	if n := len(tw.requests()); n != 2*len(bases) {
		t.Errorf("the program got %d requests, want %d", n, 2*len(bases))
	}
	resp, b := send(t, "GET", e.srv.URL+"/programs/no-such-program/proxy/watcher/status", e.alice, nil)
	checkError(t, "an unknown program", resp, b, 404)
}

// TestProxyPaths: only /watcher and below are forwarded, and no dot
// segment, however it is spelled: escaped dots are not cleaned by the
// API's router, and a proxy port has no router at all.
func TestProxyPaths(t *testing.T) {
	tw := newTestWatcher()
	e, _, _, bases := proxyBases(t, tw)
	for name, base := range bases {
		for _, path := range []string{"/etc/passwd", "/watcherx", "/watchers/status", "/programs", "/tokens",
			"/watcher/%2e%2e/%2e%2e/tokens", "/watcher/%2E%2E", "/watcher/%2e/status"} {
			resp, b := send(t, "GET", base+path, e.alice, nil)
			if resp.StatusCode != 404 {
				t.Errorf("%s: GET %s: %s %s, want 404", name, path, resp.Status, b)
			}
		}
	}
	// Plain dot segments: the router cleans them and redirects (it never
	// forwards them); the port refuses them.
	for _, path := range []string{"/watcher/../../../tokens", "/watcher/./status", "/watcher/../watcher/status"} {
		resp, _ := send(t, "GET", bases["route"]+path, e.alice, nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode < 300 || resp.StatusCode > 399 || strings.Contains(loc, "/.") {
			t.Errorf("route: GET %s: %s to %q, want a redirect to the clean path", path, resp.Status, loc)
		}
		if resp, b := send(t, "GET", bases["port"]+path, e.alice, nil); resp.StatusCode != 404 {
			t.Errorf("port: GET %s: %s %s, want 404", path, resp.Status, b)
		}
	}
	if reqs := tw.requests(); len(reqs) != 0 {
		t.Errorf("refused paths reached the program: %+v", reqs)
	}
	// What may pass does.
	for _, path := range []string{"/watcher", "/watcher/", "/watcher/status", "/watcher/..x"} {
		for name, base := range bases {
			if resp, b := send(t, "GET", base+path, e.alice, nil); resp.StatusCode != 200 {
				t.Errorf("%s: GET %s: %s %s", name, path, resp.Status, b)
			}
		}
	}
}

// TestProxyBodyLimit: a request body over maxProxyBody is refused with
// 413, and the program gets at most maxProxyBody bytes of it.
func TestProxyBodyLimit(t *testing.T) {
	tw := newTestWatcher()
	e, _, _, bases := proxyBases(t, tw)
	for name, base := range bases {
		before := len(tw.requests())
		resp, b := send(t, "POST", base+"/watcher/body", e.alice, strings.NewReader(strings.Repeat("x", maxProxyBody)))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: a body of the limit: %s %s", name, resp.Status, b)
		}
		resp, b = send(t, "POST", base+"/watcher/body", e.alice, strings.NewReader(strings.Repeat("x", maxProxyBody+1)))
		checkError(t, name+": a body over the limit", resp, b, http.StatusRequestEntityTooLarge)
		reqs := tw.requests()[before:]
		if len(reqs) == 0 || reqs[0].BodyBytes != maxProxyBody {
			t.Fatalf("%s: the program got %+v, want the first body whole", name, reqs)
		}
		for _, r := range reqs[1:] {
			if r.BodyBytes > maxProxyBody {
				t.Errorf("%s: the program got %d bytes of a body over the limit", name, r.BodyBytes)
			}
		}
	}
}

// TestProxyNotReady: a program that is not Ready answers 503 through the
// proxy, and nothing reaches it.
func TestProxyNotReady(t *testing.T) {
	tw := newTestWatcher()
	e := newFakeProxyEnv(t, tw.program(), Options{})
	id := e.deploy("alice")
	if _, err := e.h.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	e.waitContainer(id, func(cid string) bool { return cid == "" })
	resp, b := send(t, "GET", e.srv.URL+"/programs/"+id+"/proxy/watcher/status", e.alice, nil)
	checkError(t, "a stopped program", resp, b, http.StatusServiceUnavailable)
	if reqs := tw.requests(); len(reqs) != 0 {
		t.Errorf("requests reached a stopped program: %+v", reqs)
	}
}

// TestProxyFlushesOnlyStreams: an answer with a length goes out when it
// is complete, with no flush on the way; a stream (text/event-stream) is
// flushed as it comes, so its first event reaches the caller while the
// program still holds the second.
func TestProxyFlushesOnlyStreams(t *testing.T) {
	tw := newTestWatcher()
	e := newFakeProxyEnv(t, tw.program(), Options{})
	t.Cleanup(tw.let) // first: the held answer must not hold the servers' closing
	id := e.deploy("alice")

	req := httptest.NewRequest("GET", "/programs/"+id+"/proxy/watcher/status", nil)
	req.Header.Set("Authorization", "Bearer "+e.alice)
	w := &discardWriter{h: http.Header{}}
	e.api.ServeHTTP(w, req)
	if w.code != 200 || w.n == 0 {
		t.Fatalf("status: %d, %d bytes", w.code, w.n)
	}
	if w.flushes != 0 {
		t.Errorf("an answer with a Content-Length was flushed %d times", w.flushes)
	}

	resp, err := func() (*http.Response, error) {
		r, _ := http.NewRequest("GET", e.srv.URL+"/programs/"+id+"/proxy/watcher/stream", nil)
		r.Header.Set("Authorization", "Bearer "+e.alice)
		return http.DefaultClient.Do(r)
	}()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
	}()
	select {
	case l := <-lines:
		if l != "data: one" {
			t.Fatalf("first event %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's first event did not come through while the program held the second")
	}
	tw.let()
	if l := <-lines; l != "data: two" {
		t.Fatalf("second event %q", l)
	}
	for range lines {
	}
}
