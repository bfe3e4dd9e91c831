package api

import "net/http"

// muxWriter lets the API route each request once. The mux sets
// r.Pattern before it calls what it found: a route's handler (or a
// redirect to a route), whose answer goes straight to the client; or, for
// an unmatched request, its own 404, 405 or path-cleaning redirect, whose
// status and headers are kept in rec for serve to answer in JSON. (Asking
// the mux first with Handler and then serving would walk its tree twice
// for every request, and a {path...} route twice more for its
// trailing-slash check: about two dozen allocations per proxied request.)
type muxWriter struct {
	w   http.ResponseWriter
	r   *http.Request
	rec recorder
}

// routed reports whether the mux found a route: writes go to the client.
func (m *muxWriter) routed() bool { return m.r.Pattern != "" }

func (m *muxWriter) Header() http.Header {
	if m.routed() {
		return m.w.Header()
	}
	if m.rec.h == nil {
		m.rec.h = http.Header{}
	}
	return m.rec.h
}

func (m *muxWriter) Write(b []byte) (int, error) {
	if m.routed() {
		return m.w.Write(b)
	}
	return m.rec.Write(b)
}

func (m *muxWriter) WriteHeader(code int) {
	if m.routed() {
		m.w.WriteHeader(code)
		return
	}
	m.rec.WriteHeader(code)
}

// Flush reaches the client's connection for a routed request (streams:
// logs, events, the proxy's streaming answers).
func (m *muxWriter) Flush() {
	if f, ok := m.w.(http.Flusher); ok && m.routed() {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's deadlines,
// Hijack (the proxy's protocol upgrades) and full duplex.
func (m *muxWriter) Unwrap() http.ResponseWriter { return m.w }
