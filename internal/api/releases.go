package api

import (
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/store"
)

// releaseView is a release as the API shows it.
type releaseView struct {
	Number    int       `json:"number"`
	BuildID   string    `json:"build_id"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Digest    string    `json:"digest"`
	Note      string    `json:"note,omitempty"`
	Current   bool      `json:"current"` // the program's source now
}

func viewRelease(r store.Release, current bool) releaseView {
	return releaseView{r.Number, r.BuildID, r.CreatedAt, r.CreatedBy, r.Digest, r.Note, current}
}

func (s *server) releases(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	rs, err := s.h.Releases(r.Context(), row.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]releaseView, 0, len(rs))
	for i, rel := range rs {
		out = append(out, viewRelease(rel, i == 0))
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "releases": out})
}

func (s *server) rollback(w http.ResponseWriter, r *http.Request, p principal) {
	var b struct {
		To int `json:"to"` // 0: the release before the newest
	}
	if r.ContentLength != 0 && !decode(w, r, maxSmallBody, &b) {
		return
	}
	if b.To < 0 {
		writeError(w, http.StatusBadRequest, "to must be a release number (or 0 for the previous one)")
		return
	}
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	rel, next, err := s.h.Rollback(r.Context(), row.ID, b.To, p.UserID)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"release": viewRelease(rel, true), "program": s.view(next)})
}
