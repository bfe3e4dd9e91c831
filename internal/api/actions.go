package api

import (
	"net/http"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/store"
)

func (s *server) command(w http.ResponseWriter, r *http.Request, p principal, verb string,
	do func(*host.Host, *http.Request, string) (store.Program, error)) {
	if !requireJSON(w, r) {
		return
	}
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	next, err := do(s.h, r, row.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": next.ID, "state": next.State, "message": verb, "seq": next.Seq})
}

func (s *server) startProgram(w http.ResponseWriter, r *http.Request, p principal) {
	s.command(w, r, p, "start requested", func(h *host.Host, r *http.Request, id string) (store.Program, error) {
		return h.Start(r.Context(), id)
	})
}

func (s *server) stopProgram(w http.ResponseWriter, r *http.Request, p principal) {
	s.command(w, r, p, "stop requested", func(h *host.Host, r *http.Request, id string) (store.Program, error) {
		return h.Stop(r.Context(), id)
	})
}

func (s *server) restartProgram(w http.ResponseWriter, r *http.Request, p principal) {
	s.command(w, r, p, "restart requested", func(h *host.Host, r *http.Request, id string) (store.Program, error) {
		return h.Restart(r.Context(), id)
	})
}

func (s *server) setRestartPolicy(w http.ResponseWriter, r *http.Request, p principal) {
	var b struct {
		RestartPolicy string `json:"restart_policy"`
	}
	if !decode(w, r, maxSmallBody, &b) {
		return
	}
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	next, err := s.h.SetRestartPolicy(r.Context(), row.ID, b.RestartPolicy)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": next.ID, "restart_policy": next.Policy, "state": next.State})
}
