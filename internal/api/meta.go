package api

import (
	_ "embed"
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/host"
)

//go:embed openapi.json
var openapiJSON []byte

// healthz tells whether the Host can do its work: 200 and "ok" when the
// engine answers and has the programs' runtime, else 503 and "degraded"
// with what is wrong. The Host itself answers either way; the API keeps
// serving what it holds (programs, logs, history) while the engine is gone.
func (s *server) healthz(w http.ResponseWriter, r *http.Request, _ principal) {
	hl := s.h.Health()
	status, code := "ok", http.StatusOK
	if !hl.OK() {
		status, code = "degraded", http.StatusServiceUnavailable
	}
	writeJSON(w, code, healthBody{
		Status: status, CheckedAt: hl.CheckedAt,
		Engine: component(hl.Engine), Runtime: component(hl.Runtime),
	})
}

type healthBody struct {
	Status    string        `json:"status"`
	CheckedAt time.Time     `json:"checked_at"`
	Engine    healthOfThing `json:"engine"`
	Runtime   healthOfThing `json:"runtime"`
}

type healthOfThing struct {
	Name    string    `json:"name"`
	OK      bool      `json:"ok"`
	Problem string    `json:"problem,omitempty"`
	Since   time.Time `json:"since"`
}

func component(c host.Component) healthOfThing {
	return healthOfThing{Name: c.Name, OK: c.OK, Problem: c.Problem, Since: c.Since}
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
