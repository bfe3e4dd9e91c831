package api

import (
	_ "embed"
	"errors"
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/tokens"
)

type tokenView struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	Admin     bool       `json:"admin"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request, _ principal) {
	var b struct {
		UserID string `json:"user_id"`
	}
	if !decode(w, r, maxSmallBody, &b) {
		return
	}
	tok, t, err := s.tokens.Create(r.Context(), b.UserID)
	if errors.Is(err, tokens.ErrBadUser) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "id": t.ID, "user_id": t.UserID, "created_at": t.CreatedAt})
}

func (s *server) listTokens(w http.ResponseWriter, r *http.Request, _ principal) {
	ts, err := s.tokens.List(r.Context(), r.URL.Query().Get("user_id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]tokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView{t.ID, t.UserID, t.IsAdmin, t.CreatedAt, t.RevokedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out, "count": len(out)})
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request, _ principal) {
	id := r.PathValue("id")
	if err := s.tokens.Revoke(r.Context(), id); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "status": "revoked"})
}
