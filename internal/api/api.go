// Package api serves the Host over HTTP: the programs REST API, secrets,
// tokens, the authenticated reverse proxy to each program's WatcherAPI,
// health, version, Prometheus metrics and the OpenAPI document.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/tokens"
)

// Options configure the API handler.
type Options struct {
	DataDir   string
	Version   string
	Logger    *slog.Logger
	ProxyBase string // e.g. "http://127.0.0.1:18080", used to build proxy_url
	// PortRange, e.g. "9000-9999", gives each Ready program a loopback
	// port serving its WatcherAPI, for the owner's or the admin's token
	// (seed compatibility). Empty: off.
	PortRange string
	// MaxFollows caps the log streams (logs?follow=1, build-log?follow=1)
	// one user may have open at once, MaxAdminFollows the admin's; beyond
	// it a follow is refused with 429. Zero: DefaultMaxFollows,
	// DefaultMaxAdminFollows.
	MaxFollows, MaxAdminFollows int
	// ProxyInFlight caps the proxied requests one program has open at once
	// (default DefaultProxyInFlight); beyond it a request is refused with
	// 429 at once. A hung or trickling WatcherAPI then holds that many of
	// the Host's goroutines and connections, not one per request sent.
	ProxyInFlight int
	// ProxyHeaderTimeout is how long a program's WatcherAPI has to begin
	// its answer (default DefaultProxyHeaderTimeout); then the caller gets
	// 504. A body may stream for as long as the caller reads it.
	ProxyHeaderTimeout time.Duration
}

// Defaults of the proxy's bounds (Options).
const (
	DefaultProxyInFlight      = 64
	DefaultProxyHeaderTimeout = 30 * time.Second
)

// Body limits.
const (
	maxSourceBody = 32 << 20
	maxSmallBody  = 64 << 10
	maxProxyBody  = 4 << 20
)

type server struct {
	h         *host.Host
	tokens    *tokens.Tokens
	opts      Options
	log       *slog.Logger
	mux       *http.ServeMux
	metrics   *metrics
	follows   follows
	bulkTurns chan struct{} // see bulk
	ports     *ports        // per-program proxy ports (nil: off)
	upstreams *upstreams    // the proxy's per-program reverse proxies (upstream.go)
}

// route is one registered route; the OpenAPI test checks the document
// against this table.
type route struct {
	method  string // "" for any method
	pattern string
	auth    access
	handler func(*server, http.ResponseWriter, *http.Request, principal)
}

type access int

const (
	public access = iota
	user          // any valid token
	admin         // admin tokens only
)

var routes = []route{
	{"GET", "/healthz", public, (*server).healthz},
	{"GET", "/version", public, (*server).version},
	{"GET", "/metrics", admin, (*server).serveMetrics}, // every tenant's counts: the operator's
	{"GET", "/debug/pprof/{name...}", admin, (*server).debugPprof},
	{"GET", "/openapi.json", public, (*server).openapi},
	{"GET", "/whoami", user, (*server).whoami},

	{"POST", "/programs", user, (*server).createProgram},
	{"GET", "/programs", user, (*server).listPrograms},
	{"GET", "/programs/{id}", user, (*server).getProgram},
	{"GET", "/events", user, (*server).events},
	{"DELETE", "/programs/{id}", user, (*server).deleteProgram},
	{"POST", "/programs/{id}/start", user, (*server).startProgram},
	{"POST", "/programs/{id}/stop", user, (*server).stopProgram},
	{"POST", "/programs/{id}/restart", user, (*server).restartProgram},
	{"PUT", "/programs/{id}/source", user, (*server).replaceSource},
	{"GET", "/programs/{id}/source", user, (*server).getSource},
	{"GET", "/programs/{id}/history", user, (*server).history},
	{"GET", "/programs/{id}/releases", user, (*server).releases},
	{"POST", "/programs/{id}/rollback", user, (*server).rollback},
	{"GET", "/programs/{id}/state", user, (*server).exportState},
	{"PUT", "/programs/{id}/state", user, (*server).importState},
	{"GET", "/programs/{id}/stats", user, (*server).programStats},
	{"PUT", "/programs/{id}/restart-policy", user, (*server).setRestartPolicy},
	{"GET", "/programs/{id}/build-log", user, (*server).buildLog},
	{"GET", "/programs/{id}/logs", user, (*server).logs},
	{"GET", "/programs/{id}/secrets", user, (*server).listSecrets},
	{"PUT", "/programs/{id}/secrets/{name}", user, (*server).putSecret},
	{"DELETE", "/programs/{id}/secrets/{name}", user, (*server).deleteSecret},
	{"", "/programs/{id}/proxy/{path...}", user, (*server).proxy},

	{"POST", "/webhooks", user, (*server).createWebhook},
	{"GET", "/webhooks", user, (*server).listWebhooks},
	{"GET", "/webhooks/{id}", user, (*server).getWebhook},
	{"DELETE", "/webhooks/{id}", user, (*server).deleteWebhook},
	{"GET", "/webhooks/{id}/deliveries", user, (*server).webhookDeliveries},
	{"POST", "/webhooks/{id}/ping", user, (*server).pingWebhook},

	{"POST", "/tokens", admin, (*server).createToken},
	{"GET", "/tokens", admin, (*server).listTokens},
	{"DELETE", "/tokens/{id}", admin, (*server).revokeToken},
}

// Server is the API: an http.Handler over a Host, and the per-program
// proxy ports it opens (Options.PortRange). Close it when done.
type Server struct{ s *server }

// ServeHTTP serves the API.
func (a *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.s.serve(w, r) }

// Close closes the per-program proxy ports and the proxy's connections to
// programs. Requests in flight are the http.Server's to end.
func (a *Server) Close() error {
	a.s.ports.close()
	a.s.upstreams.close()
	return nil
}

// New returns the API serving h.
func New(h *host.Host, opts Options) (*Server, error) {
	if h == nil {
		return nil, errors.New("api: a host is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	opts.ProxyBase = strings.TrimRight(opts.ProxyBase, "/")
	if opts.MaxFollows <= 0 {
		opts.MaxFollows = DefaultMaxFollows
	}
	if opts.MaxAdminFollows <= 0 {
		opts.MaxAdminFollows = DefaultMaxAdminFollows
	}
	if opts.ProxyInFlight <= 0 {
		opts.ProxyInFlight = DefaultProxyInFlight
	}
	if opts.ProxyHeaderTimeout <= 0 {
		opts.ProxyHeaderTimeout = DefaultProxyHeaderTimeout
	}
	s := &server{h: h, tokens: h.Tokens(), opts: opts, log: opts.Logger, mux: http.NewServeMux(), bulkTurns: make(chan struct{}, maxBulk)}
	s.metrics = newMetrics(s)
	s.upstreams = newUpstreams(h, opts.ProxyInFlight, opts.ProxyHeaderTimeout, func(id string, err error) { s.log.Warn("proxy", "program", id, "err", err) })
	for _, rt := range routes {
		pattern := rt.pattern
		if rt.method != "" {
			pattern = rt.method + " " + pattern
		}
		s.mux.Handle(pattern, s.wrap(rt))
	}
	var err error
	if s.ports, err = startPorts(s, opts.PortRange); err != nil {
		s.upstreams.close()
		return nil, err
	}
	return &Server{s}, nil
}

// serve dispatches to the mux; unmatched requests (404, 405) get the JSON
// error body too.
func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	mw := &muxWriter{w: w, r: r, rec: recorder{code: http.StatusOK}}
	s.mux.ServeHTTP(mw, r) // routes once (see muxWriter)
	if r.Pattern != "" {
		return
	}
	rec := &mw.rec
	for k, v := range rec.h {
		if k != "Content-Type" && k != "X-Content-Type-Options" && k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	code := rec.code
	if code == http.StatusMovedPermanently || code == http.StatusPermanentRedirect || code == http.StatusTemporaryRedirect {
		w.WriteHeader(code) // path cleaning redirects
		return
	}
	if code < 400 {
		code = http.StatusNotFound
	}
	msg := "no such route"
	if code == http.StatusMethodNotAllowed {
		msg = "method not allowed on " + r.URL.Path
	}
	writeError(w, code, msg)
}

// principal is who a request's token speaks for.
type principal = tokens.Principal

func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() { s.metrics.observeRequest(rt, sw.code, time.Since(start)) }()
		var p principal
		if rt.auth != public {
			var ok bool
			p, ok = s.authenticate(sw, r)
			if !ok {
				return
			}
			if rt.auth == admin && !p.Admin {
				writeError(sw, http.StatusForbidden, "this route is for the admin")
				return
			}
		}
		rt.handler(s, sw, r, p)
	})
}

// authenticate checks the bearer token against the store (by its SHA-256;
// revoked tokens are not found).
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) (principal, bool) {
	fail := func(msg string) (principal, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hershy"`)
		writeError(w, http.StatusUnauthorized, msg)
		return principal{}, false
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(auth, " ")
	if auth == "" || !found || !strings.EqualFold(scheme, "Bearer") {
		return fail("a bearer token is required (Authorization: Bearer <token>)")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > 512 {
		return fail("invalid token")
	}
	p, err := s.tokens.Check(r.Context(), tok)
	if err != nil {
		if !errors.Is(err, tokens.ErrInvalid) {
			s.log.Error("token lookup", "err", err)
		}
		return fail("invalid or revoked token")
	}
	return p, true
}

// ---- responses and errors ----

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// Compact: indenting cost a quarter of GET /programs, and clients
	// (the CLI, the dashboard, jq) format for people themselves.
	json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error   string `json:"error"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: http.StatusText(code), Code: code, Message: msg})
}

// fail maps an error to its status code.
func (s *server) fail(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, host.ErrInvalid), errors.Is(err, store.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, host.ErrQuota):
		code = http.StatusForbidden
	case errors.Is(err, host.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, host.ErrConflict), errors.Is(err, store.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, host.ErrNotReady):
		code = http.StatusServiceUnavailable
	case errors.Is(err, errTooManyFollows):
		code = http.StatusTooManyRequests
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	msg := s.h.RelPaths(err.Error())
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "err", err)
		msg = "internal error"
	}
	writeError(w, code, msg)
}

// decode reads a JSON body: application/json required (415), at most
// limit bytes (413), no unknown fields and nothing after the value (400).
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body: unexpected data after the object")
		return false
	}
	return true
}

// requireJSON enforces the JSON content type on mutations without a body
// of interest (start, stop, ...): an empty body is accepted.
func requireJSON(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSmallBody)
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return false
	}
	return true
}

// recorder captures the mux's own answer to an unmatched request (its
// status and headers such as Allow or Location), replaced by a JSON body.
type recorder struct {
	h    http.Header
	code int
	set  bool
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	r.set = true
	return len(b), nil
}
func (r *recorder) WriteHeader(code int) {
	if !r.set {
		r.code, r.set = code, true
	}
}

// statusWriter records the status code; Unwrap lets
// http.ResponseController reach Flush and deadlines.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
