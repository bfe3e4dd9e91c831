package api

import (
	"net/http/httptest"
	"net/http/httputil"
	"testing"
)

func TestProxyRewriteStripsCredentials(t *testing.T) {
	in := httptest.NewRequest("POST", "http://host/programs/p/proxy/watcher/message?x=1", nil)
	in.SetPathValue("path", "watcher/message")
	in.Header.Set("Authorization", "Bearer secret")
	in.Header.Set("Cookie", "a=b")
	in.Header.Set("Proxy-Authorization", "Basic x")
	in.Header.Set("X-Custom", "kept")
	pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
	rewrite(pr, "c1.container")
	out := pr.Out
	if got := out.URL.String(); got != "http://c1.container/watcher/message?x=1" {
		t.Errorf("url %s", got)
	}
	for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if out.Header.Get(h) != "" {
			t.Errorf("%s forwarded", h)
		}
	}
	if out.Header.Get("X-Custom") != "kept" || out.Host != "c1.container" {
		t.Errorf("headers %v host %s", out.Header, out.Host)
	}
}

// TestForwardPath: the path the program is asked for is "/" and the
// request's {path}, whether the URL carries more before it (the API's
// route), exactly it (a proxy port), or an escaped form of it.
func TestForwardPath(t *testing.T) {
	for _, c := range []struct{ url, path, want string }{
		{"/programs/p/proxy/watcher/status", "watcher/status", "/watcher/status"},
		{"/watcher/status", "watcher/status", "/watcher/status"},
		{"/watcher", "watcher", "/watcher"},
		{"/programs/p/proxy/watcher/a%2Fb", "watcher/a/b", "/watcher/a/b"},
		{"/programs/p/proxy/watcher/x", "watcher/y", "/watcher/y"}, // never the URL's tail when it differs
		{"/", "watcher", "/watcher"},
	} {
		r := httptest.NewRequest("GET", "http://host"+c.url, nil)
		r.SetPathValue("path", c.path)
		if got := forwardPath(r); got != c.want {
			t.Errorf("forwardPath(%s, {path}=%s) = %s, want %s", c.url, c.path, got, c.want)
		}
	}
}

// TestWatcherPath: only the WatcherAPI's own routes are forwarded, and no
// path that a program's server could resolve to something else.
func TestWatcherPath(t *testing.T) {
	for path, ok := range map[string]bool{
		"watcher": true, "watcher/": true, "watcher/status": true, "watcher/a/b": true, "watcher/..x": true,
		"": false, "/watcher": false, "watchers": false, "etc/passwd": false, "watcherx/status": false,
		"watcher/..": false, "watcher/../x": false, "watcher/./status": false, "watcher/a/../../x": false, "watcher/.": false,
	} {
		if got := watcherPath(path); got != ok {
			t.Errorf("watcherPath(%q) = %v, want %v", path, got, ok)
		}
	}
}
