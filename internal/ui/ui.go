// Package ui is the Host's web dashboard, served at /ui/ by hershy serve.
//
// It is a client of the Host's own API, in process: a signed-in browser
// holds a session cookie, the session holds the user's bearer token, and
// every page is rendered from API answers fetched with that token (see
// apicall.go), every action is an API request with it. The browser's
// scripts reach the API through a same-origin pass-through (/ui/api/...)
// that adds the token, for the live parts (the event stream, log follows).
// Nothing is fetched from elsewhere: templates, CSS and the small script
// are embedded.
package ui

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the dashboard.
type Options struct {
	// Logger gets what goes wrong inside the dashboard (never a token).
	Logger *slog.Logger
	// Version is shown in the footer.
	Version string
	// SessionIdle ends a session unused for this long (default 2 h);
	// SessionMax ends any session this long after sign-in (default 24 h).
	SessionIdle, SessionMax time.Duration
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Handler serves the dashboard under /ui/. Mount it at "/ui/" beside the
// API handler it was made with.
type Handler struct {
	api      http.Handler
	opts     Options
	log      *slog.Logger
	sessions *sessions
	mux      *http.ServeMux
	pages    map[string]*template.Template
	static   http.Handler
}

// New returns the dashboard over the API handler api (internal/api's
// Server): every request the dashboard makes goes through it.
func New(api http.Handler, opts Options) (*Handler, error) {
	if api == nil {
		return nil, errors.New("ui: the API handler is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = 2 * time.Hour
	}
	if opts.SessionMax <= 0 {
		opts.SessionMax = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	h := &Handler{
		api: api, opts: opts, log: opts.Logger, pages: pages,
		sessions: newSessions(opts.SessionIdle, opts.SessionMax, opts.Now),
		mux:      http.NewServeMux(),
		static:   http.StripPrefix("/ui/static/", http.FileServerFS(sub)),
	}
	h.routes()
	return h, nil
}

// ServeHTTP serves the dashboard, with the security headers every answer
// carries.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Scripts only from our own files (no inline script, so an injected
	// <script> in a page would not run), nothing from elsewhere, never
	// framed (clickjacking), forms only to ourselves.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) routes() {
	m := h.mux
	m.Handle("GET /ui/static/", http.HandlerFunc(h.serveStatic))
	m.HandleFunc("GET /ui/static/kit.css", h.serveKitCSS)
	m.HandleFunc("GET /ui/signin", h.signinPage)
	m.HandleFunc("POST /ui/signin", h.signin)
	m.Handle("/ui/api/", h.authed(h.passThrough))

	page := func(pattern string, fn func(http.ResponseWriter, *http.Request, *request)) {
		m.Handle(pattern, h.authed(fn))
	}
	page("POST /ui/signout", h.signout)
	page("GET /ui/{$}", h.programsPage)
	page("GET /ui/deploy", h.deployPage)
	page("POST /ui/deploy", h.deploy)
	page("GET /ui/programs/{id}", h.programPage)
	page("POST /ui/programs/{id}/{verb}", h.programAction)
	page("POST /ui/programs/{id}/rollback", h.rollback)
	page("GET /ui/programs/{id}/delete", h.deletePage)
	page("POST /ui/programs/{id}/delete", h.deleteProgram)
	page("POST /ui/programs/{id}/source", h.uploadVersion)
	page("POST /ui/programs/{id}/secrets", h.setSecret)
	page("POST /ui/programs/{id}/secrets/{name}/delete", h.deleteSecret)
	page("GET /ui/programs/{id}/logs", h.logsPage)
	page("GET /ui/programs/{id}/logs.txt", h.logsDownload)
	page("GET /ui/programs/{id}/build", h.buildPage)
	page("GET /ui/programs/{id}/build-log", h.followBuildLog)
	page("GET /ui/programs/{id}/source", h.sourcePage)
	page("GET /ui/programs/{id}/watcher", h.watcherPage)
	page("POST /ui/programs/{id}/message", h.sendMessage)
	page("GET /ui/programs/{id}/resources", h.resourcesPage)
	page("GET /ui/webhooks", h.webhooksPage)
	page("POST /ui/webhooks", h.addWebhook)
	page("POST /ui/webhooks/{wid}/ping", h.pingWebhook)
	page("POST /ui/webhooks/{wid}/delete", h.deleteWebhook)
	page("GET /ui/admin", h.adminPage)
	page("POST /ui/admin/tokens", h.createToken)
	page("POST /ui/admin/tokens/{tid}/revoke", h.revokeToken)
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.notFound(w, r, nil)
	})
}

func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	// Revalidated on each load (ETag-less embedded files carry the
	// binary's mod time): a new Host version shows its own script.
	w.Header().Set("Cache-Control", "no-cache")
	h.static.ServeHTTP(w, r)
}

// request is what a signed-in handler gets: the session and an API client
// acting with its token.
type request struct {
	s   *session
	api *apiClient
	// mr is the multipart reader of an upload whose first part, the CSRF
	// field, was read and checked by authed.
	mr multipartReader
}

// authed wraps a handler that needs a session. Without one, a page is
// redirected to the sign-in page, anything else refused. A state-changing
// request must also come from our own origin and carry the session's CSRF
// token (a form field, the X-CSRF-Token header, or the first part of a
// multipart upload), compared in constant time; otherwise it is refused
// with 403 before the handler runs, so no handler can forget it.
func (h *Handler) authed(fn func(http.ResponseWriter, *http.Request, *request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if c, err := r.Cookie(sessionCookie); err == nil {
			s = h.sessions.get(c.Value)
		}
		unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead
		if s == nil {
			switch {
			case strings.HasPrefix(r.URL.Path, "/ui/api/"):
				jsonError(w, http.StatusUnauthorized, "not signed in (or the session ended): sign in again at /ui/signin")
			case unsafe:
				h.refuse(w, r, http.StatusForbidden, "Your session has ended. Sign in again, then retry.")
			default:
				http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
			}
			return
		}
		id := s.id
		req := &request{s: s, api: &apiClient{api: h.api, token: s.token, revoked: func() { h.sessions.remove(id) }}}
		if unsafe {
			if !sameOrigin(r) {
				h.refuse(w, r, http.StatusForbidden, "Refused: this request did not come from the dashboard's own pages (cross-origin).")
				return
			}
			tok, mr, err := csrfValue(w, r)
			if err != nil || !sameToken(tok, s.csrf) {
				h.refuse(w, r, http.StatusForbidden, "Refused: the form's security token is missing or wrong. Reload the page and retry.")
				return
			}
			req.mr = mr
		}
		fn(w, r, req)
	})
}

// refuse answers an error page, or JSON to the dashboard's fetches.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if wantsJSON(r) {
		jsonError(w, code, msg)
		return
	}
	h.render(w, r, nil, code, "error", "Error", map[string]any{"Code": code, "Message": msg})
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, _ *request) {
	h.refuse(w, r, http.StatusNotFound, "There is no such page.")
}

// wantsJSON: the dashboard's scripts ask for JSON.
func wantsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/ui/api/") || strings.Contains(r.Header.Get("Accept"), "application/json")
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	writeJSONBody(w, map[string]any{"error": http.StatusText(code), "code": code, "message": msg})
}

// ctx is a request's context for API calls, bounded so that a page never
// hangs on a slow program's WatcherAPI.
func pageCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 15*time.Second)
}

// Mount serves the dashboard under /ui/ beside the API, which keeps every
// other path; GET / sends a browser to the dashboard.
func Mount(api http.Handler, dash *Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ui/", dash)
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	mux.Handle("/", api)
	return mux
}
