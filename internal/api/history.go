package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// maxHistory is the most transitions one history answer holds.
const maxHistory = 1000

func (s *server) history(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	// The newest transitions, at most maxHistory: a program that has
	// crashed and restarted for months has a long history, and one answer
	// must not cost the Host memory in proportion to it.
	limit := maxHistory
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit must be a non-negative integer")
			return
		}
		if n > 0 {
			limit = min(n, maxHistory)
		}
	}
	ts, err := s.h.Transitions(r.Context(), row.ID, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	type tv struct {
		From   lifecycle.State `json:"from"`
		To     lifecycle.State `json:"to"`
		Reason string          `json:"reason"`
		At     time.Time       `json:"at"`
	}
	out := make([]tv, 0, len(ts))
	for _, t := range ts {
		out = append(out, tv{t.From, t.To, s.h.RelPaths(t.Reason), t.At})
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "transitions": out})
}
