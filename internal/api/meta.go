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

// whoami tells a client who its token speaks for, so that it can check a
// token before keeping it (the dashboard's sign-in) and show the admin's
// pages only to the admin. The token itself is never echoed.
func (s *server) whoami(w http.ResponseWriter, r *http.Request, p principal) {
	writeJSON(w, http.StatusOK, map[string]any{"user_id": p.UserID, "admin": p.Admin, "token_id": p.TokenID})
}
