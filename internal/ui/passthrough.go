package ui

import (
	"mime"
	"net/http"
	"strings"
	"time"
)

// passThrough serves /ui/api/<path> as the API's /<path>, with the
// session's token as the bearer: the browser's script follows the event
// stream and logs, and sends actions, without ever holding the token.
// authed has already required the session, and for a state-changing
// request our origin and the CSRF header.
//
// What comes back is the API's answer, or a program's WatcherAPI answer
// through the API's proxy, served on the dashboard's origin. A program
// chooses those bytes, so the answer is fenced: only JSON, event streams
// and plain text keep their type (anything else becomes an opaque
// download), and a sandboxing CSP with nosniff means that even HTML a
// program sends is never run as a page of ours.
func (h *Handler) passThrough(w http.ResponseWriter, r *http.Request, req *request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/ui/api")
	if rest == "" || rest[0] != '/' {
		jsonError(w, http.StatusNotFound, "no such route")
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = "", ""
	if err := setEscapedPath(r2, rest); err != nil {
		jsonError(w, http.StatusBadRequest, "bad path")
		return
	}
	r2.RequestURI = r2.URL.RequestURI()
	// The browser's credentials are the dashboard's, not the API's: the
	// cookie and the CSRF header stay here, the token is the session's.
	r2.Header.Del("Cookie")
	r2.Header.Del(csrfHeader)
	r2.Header.Set("Authorization", "Bearer "+req.s.token)
	h.api.ServeHTTP(&fencedWriter{ResponseWriter: w}, r2)
}

func setEscapedPath(r *http.Request, escaped string) error {
	u, err := r.URL.Parse(escaped)
	if err != nil {
		return err
	}
	r.URL.Path, r.URL.RawPath = u.Path, u.RawPath
	return nil
}

// fencedWriter rewrites the headers of a passed-through answer just before
// they are sent (see passThrough).
type fencedWriter struct {
	http.ResponseWriter
	wrote bool
}

func (f *fencedWriter) fence() {
	if f.wrote {
		return
	}
	f.wrote = true
	hd := f.ResponseWriter.Header()
	mt, _, _ := mime.ParseMediaType(hd.Get("Content-Type"))
	switch mt {
	case "application/json", "text/event-stream", "text/plain", "":
	default:
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Content-Disposition", "attachment")
	}
	hd.Del("Set-Cookie")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox; frame-ancestors 'none'")
}

func (f *fencedWriter) WriteHeader(code int) {
	f.fence()
	f.ResponseWriter.WriteHeader(code)
}

func (f *fencedWriter) Write(b []byte) (int, error) {
	f.fence()
	return f.ResponseWriter.Write(b)
}

// Flush and Unwrap keep streams streaming (http.ResponseController).
func (f *fencedWriter) Flush() {
	f.fence()
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (f *fencedWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// followBuildLog streams a program's build log as it is written
// (build-log?follow=1 through the API). A build that has not begun its log
// yet is a 404 there; this waits for the log to appear (asking again each
// second, for up to two minutes) instead, so the page's script just reads
// one stream from the queue to the end of the build.
func (h *Handler) followBuildLog(w http.ResponseWriter, r *http.Request, req *request) {
	for try := 0; ; try++ {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = programPath(r.PathValue("id"), "/build-log"), ""
		r2.URL.RawQuery = "follow=1"
		r2.RequestURI = r2.URL.RequestURI()
		r2.Header.Del("Cookie")
		r2.Header.Set("Authorization", "Bearer "+req.s.token)
		g := &gateWriter{w: &fencedWriter{ResponseWriter: w}, h: http.Header{}}
		h.api.ServeHTTP(g, r2)
		if !g.held {
			return
		}
		if try == 120 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		t := time.NewTimer(time.Second)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// gateWriter holds back a 404 answer (held) and passes any other through.
type gateWriter struct {
	w       http.ResponseWriter
	h       http.Header
	decided bool
	held    bool
}

func (g *gateWriter) Header() http.Header {
	if g.decided && !g.held {
		return g.w.Header()
	}
	return g.h
}

func (g *gateWriter) WriteHeader(code int) {
	if g.decided {
		return
	}
	g.decided = true
	if code == http.StatusNotFound {
		g.held = true
		return
	}
	for k, v := range g.h {
		g.w.Header()[k] = v
	}
	g.w.WriteHeader(code)
}

func (g *gateWriter) Write(b []byte) (int, error) {
	if !g.decided {
		g.WriteHeader(http.StatusOK)
	}
	if g.held {
		return len(b), nil
	}
	return g.w.Write(b)
}

func (g *gateWriter) Flush() {
	if g.decided && !g.held {
		if f, ok := g.w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

func (g *gateWriter) Unwrap() http.ResponseWriter { return g.w }
