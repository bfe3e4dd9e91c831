package api

import (
	"net/http"
	"time"
)

func (s *server) listSecrets(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	secs, err := s.h.Secrets(r.Context(), row.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	type sv struct {
		Name      string    `json:"name"`
		UpdatedAt time.Time `json:"updated_at"`
	}
	out := make([]sv, 0, len(secs))
	for _, x := range secs {
		out = append(out, sv{x.Name, x.UpdatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "secrets": out})
}

func (s *server) putSecret(w http.ResponseWriter, r *http.Request, p principal) {
	var b struct {
		Value *string `json:"value"`
	}
	if !decode(w, r, maxSmallBody, &b) {
		return
	}
	if b.Value == nil {
		writeError(w, http.StatusBadRequest, "value is required")
		return
	}
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	sec, err := s.h.SetSecret(r.Context(), row.ID, r.PathValue("name"), []byte(*b.Value))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "name": sec.Name, "updated_at": sec.UpdatedAt})
}

func (s *server) deleteSecret(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := s.h.DeleteSecret(r.Context(), row.ID, name); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "name": name, "status": "deleted"})
}
