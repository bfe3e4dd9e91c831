package api

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.json
var openapiJSON []byte

func (s *server) healthz(w http.ResponseWriter, r *http.Request, _ principal) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

func (s *server) version(w http.ResponseWriter, r *http.Request, _ principal) {
	writeJSON(w, http.StatusOK, map[string]any{"version": s.opts.Version, "runtime": s.h.Runtime(), "instance": s.h.Instance()})
}

func (s *server) openapi(w http.ResponseWriter, r *http.Request, _ principal) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiJSON)
}
