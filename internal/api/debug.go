package api

import (
	"net/http"
	"net/http/pprof"
)

// debugPprof serves the Go runtime's profiles (heap, goroutines, CPU) of
// the Host to the admin: how a slow or large Host is diagnosed in place.
// The profiles name every program and path the Host holds, so the route is
// the operator's only, like /metrics.
func (s *server) debugPprof(w http.ResponseWriter, r *http.Request, _ principal) {
	switch name := r.PathValue("name"); name {
	case "":
		pprof.Index(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
}
