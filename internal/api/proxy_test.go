package api

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

func TestProxyRewriteStripsCredentials(t *testing.T) {
	in := httptest.NewRequest("POST", "http://host/programs/p/proxy/watcher/message?x=1", nil)
	in.Header.Set("Authorization", "Bearer secret")
	in.Header.Set("Cookie", "a=b")
	in.Header.Set("Proxy-Authorization", "Basic x")
	in.Header.Set("X-Custom", "kept")
	pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
	target, _ := url.Parse("http://watcher.internal")
	rewrite(pr, target, "watcher/message")
	out := pr.Out
	if got := out.URL.String(); got != "http://watcher.internal/watcher/message?x=1" {
		t.Errorf("url %s", got)
	}
	for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if out.Header.Get(h) != "" {
			t.Errorf("%s forwarded", h)
		}
	}
	if out.Header.Get("X-Custom") != "kept" || out.Host != "watcher.internal" {
		t.Errorf("headers %v host %s", out.Header, out.Host)
	}
}
