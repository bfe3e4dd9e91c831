package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/host"
)

// The WatcherAPI proxy: /programs/{id}/proxy/watcher/... and the proxy
// ports (ports.go) forward to the program's WatcherAPI through its
// upstream (upstream.go), after the caller's token and the program's
// owner are checked. The program is untrusted: the caller's Authorization
// and cookies never reach it, and its Set-Cookie never reaches the caller.
// Only /watcher and /watcher/... are forwarded, with no dot segments, and a
// request body is capped at maxProxyBody.

// containerHostSuffix makes the Host header the program sees:
// "<container id>.container".
const containerHostSuffix = ".container"

// proxy serves /programs/{id}/proxy/{path...}.
func (s *server) proxy(w http.ResponseWriter, r *http.Request, p principal) {
	s.proxyTo(w, r, p, r.PathValue("id"))
}

// portRoute is how requests on the per-program proxy ports (hershy serve
// --proxy-ports) are authenticated and counted: like every user route.
var portRoute = route{pattern: "proxy port /watcher/...", auth: user}

// portHandler serves the requests that arrive on program id's proxy port
// (see ports.go): the caller must show the owner's or the admin's token,
// exactly as on /programs/{id}/proxy/, and the request goes through the
// same proxy, which strips the credentials. The port's whole path is the
// WatcherAPI path.
func (s *server) portHandler(id string) http.Handler {
	rt := portRoute
	rt.handler = func(s *server, w http.ResponseWriter, r *http.Request, p principal) {
		s.proxyTo(w, r, p, id)
	}
	wrapped := s.wrap(rt)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.SetPathValue("path", strings.TrimPrefix(r.URL.Path, "/"))
		wrapped.ServeHTTP(w, r)
	})
}

// proxyTo forwards r to the WatcherAPI path r.PathValue("path") of program
// id, if p may see the program.
func (s *server) proxyTo(w http.ResponseWriter, r *http.Request, p principal, id string) {
	// From the Host's memory: no database read on this path.
	t, err := s.h.ProxyTarget(r.Context(), id)
	if !s.visible(w, id, t.Owner, err, p) {
		return
	}
	if !watcherPath(r.PathValue("path")) {
		writeError(w, http.StatusNotFound, "only /watcher/ paths are proxied")
		return
	}
	if t.ContainerID == "" {
		s.fail(w, fmt.Errorf("%w (state %s)", host.ErrNotReady, t.State))
		return
	}
	up, err := s.upstreams.get(r.Context(), id, t.ContainerID)
	if err != nil {
		s.fail(w, err)
		return
	}
	select {
	case up.slots <- struct{}{}:
		defer func() { <-up.slots }()
	default:
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d requests to this program are in flight already (is its WatcherAPI hung?)", cap(up.slots)))
		return
	}
	start := time.Now()
	defer func() {
		code := http.StatusOK
		if sw, ok := w.(*statusWriter); ok {
			code = sw.code
		}
		s.metrics.observeProxy(code, time.Since(start))
	}()
	// No write deadline: a WatcherAPI answer may stream for long.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, maxProxyBody)
	}
	up.rp.ServeHTTP(w, r)
	up.done()
}

// watcherPath reports whether path (after /proxy/, or a port's path
// without its leading slash) may be forwarded: "watcher" or under
// "watcher/", with no "." or ".." segment.
func watcherPath(path string) bool {
	if path != "watcher" && !strings.HasPrefix(path, "watcher/") {
		return false
	}
	for rest := path; rest != ""; {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// forwardPath is the path the WatcherAPI is asked for: "/" and the
// request's {path}. The inbound URL ends with it (the mux takes {path...}
// from the URL's path, and a port's path is the whole of it), so it is
// that URL's tail, without a new string, whenever it can be.
func forwardPath(r *http.Request) string {
	path := r.PathValue("path")
	in := r.URL.Path
	if n := len(in) - len(path) - 1; n >= 0 && in[n] == '/' && in[n+1:] == path {
		return in[n:]
	}
	return "/" + path
}

// rewrite points the outgoing request at the WatcherAPI (host is
// "<container id>.container"; the upstream's transport dials that
// container whatever the URL says) and strips the caller's credentials.
// httputil.ReverseProxy itself removes the hop-by-hop headers (Connection
// and the headers it names, Keep-Alive, TE, Upgrade unless switching
// protocols, Proxy-*, Trailer, Transfer-Encoding) and, with Rewrite, the
// X-Forwarded-* headers of the inbound request.
func rewrite(pr *httputil.ProxyRequest, host string) {
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = host
	out.URL.Path = forwardPath(pr.In)
	out.URL.RawPath = ""
	out.URL.RawQuery = pr.In.URL.RawQuery
	out.Host = host
	out.Header.Del("Authorization")
	out.Header.Del("Proxy-Authorization")
	out.Header.Del("Cookie")
}

// stripResponse keeps the program's cookies from the caller's browser: an
// answer on the Host's origin must not set cookies for it.
func stripResponse(resp *http.Response) error {
	resp.Header.Del("Set-Cookie")
	return nil
}

// proxyError answers a request the upstream could not complete: 413 for a
// body over maxProxyBody, 502 when the program did not answer (logged),
// nothing when the caller has gone.
func proxyError(w http.ResponseWriter, r *http.Request, err error, log func(error)) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxProxyBody))
	case r.Context().Err() != nil:
	case isTimeout(err):
		log(err)
		writeError(w, http.StatusGatewayTimeout, "the program's WatcherAPI did not begin its answer in time")
	default:
		log(err)
		writeError(w, http.StatusBadGateway, "the program's WatcherAPI did not answer")
	}
}

// isTimeout reports whether err is the transport's timeout (its
// ResponseHeaderTimeout).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
