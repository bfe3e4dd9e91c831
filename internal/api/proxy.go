package api

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// proxy forwards /programs/{id}/proxy/watcher/... to the program's
// WatcherAPI through the Host's shared, pooled transport. The caller's
// Authorization and cookies never reach the (untrusted) program.
func (s *server) proxy(w http.ResponseWriter, r *http.Request, p principal) {
	s.proxyTo(w, r, p, r.PathValue("id"), r.PathValue("path"))
}

// portRoute is how requests on the per-program proxy ports (hershy serve
// --proxy-ports) are authenticated and counted: like every user route.
var portRoute = route{pattern: "proxy port /watcher/...", auth: user}

// servePort serves a request that arrived on program id's proxy port
// (see ports.go): the caller must show the owner's or the admin's
// token, exactly as on /programs/{id}/proxy/, and the request goes through
// the same proxy, which strips the credentials.
func (s *server) servePort(w http.ResponseWriter, r *http.Request, id string) {
	rt := portRoute
	rt.handler = func(s *server, w http.ResponseWriter, r *http.Request, p principal) {
		s.proxyTo(w, r, p, id, strings.TrimPrefix(r.URL.Path, "/"))
	}
	s.wrap(rt).ServeHTTP(w, r)
}

// proxyTo forwards r to /<path> of program id's WatcherAPI, if p may see
// the program.
func (s *server) proxyTo(w http.ResponseWriter, r *http.Request, p principal, id, path string) {
	// The owner from the Host's memory: no database read on this hot path.
	owner, err := s.h.Owner(r.Context(), id)
	if !s.visible(w, id, owner, err, p) {
		return
	}
	if path != "watcher" && !strings.HasPrefix(path, "watcher/") {
		writeError(w, http.StatusNotFound, "only /watcher/ paths are proxied")
		return
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == ".." || seg == "." {
			writeError(w, http.StatusNotFound, "only /watcher/ paths are proxied")
			return
		}
	}
	base, rt, err := s.h.WatcherAPI(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	target, err := url.Parse(base)
	if err != nil {
		s.fail(w, err)
		return
	}
	start := time.Now()
	sw, _ := w.(*statusWriter)
	defer func() {
		code := http.StatusOK
		if sw != nil {
			code = sw.code
		}
		s.metrics.observeProxy(code, time.Since(start))
	}()
	// No write deadline: WatcherAPI streams may last.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	r.Body = http.MaxBytesReader(w, r.Body, maxProxyBody)
	rp := &httputil.ReverseProxy{
		Transport:     rt,
		FlushInterval: -1,
		Rewrite:       func(pr *httputil.ProxyRequest) { rewrite(pr, target, path) },
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del("Set-Cookie")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return
			}
			s.log.Warn("proxy", "program", id, "err", err)
			writeError(w, http.StatusBadGateway, "the program's WatcherAPI did not answer")
		},
	}
	rp.ServeHTTP(w, r)
}

// rewrite points the outgoing request at the WatcherAPI and strips the
// caller's credentials. httputil.ReverseProxy itself removes the hop-by-hop
// headers (Connection, Keep-Alive, TE, Upgrade unless switching protocols,
// Proxy-*, Trailer, Transfer-Encoding) and, with Rewrite, the
// X-Forwarded-* headers of the inbound request.
func rewrite(pr *httputil.ProxyRequest, target *url.URL, path string) {
	pr.Out.URL.Scheme = target.Scheme
	pr.Out.URL.Host = target.Host
	pr.Out.URL.Path = "/" + path
	pr.Out.URL.RawPath = ""
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = target.Host
	pr.Out.Header.Del("Authorization")
	pr.Out.Header.Del("Proxy-Authorization")
	pr.Out.Header.Del("Cookie")
}
