package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/stats"
)

// GET /programs/{id}/stats?since=&resolution=: a program's resource
// history (package stats), oldest first. since is an RFC 3339 time or a
// duration back from now ("1h"); resolution is fine or coarse, and when
// absent the fine series if since is absent or within it, else the coarse
// one (stats.Policy.Window).

// statsBody is the answer.
type statsBody struct {
	ProgramID   string           `json:"program_id"`
	Resolution  stats.Resolution `json:"resolution"`
	StepSeconds float64          `json:"step_seconds"`
	Samples     []stats.Sample   `json:"samples"`
}

// statsEvent is the data of a "stats" event on GET /events.
type statsEvent struct {
	ProgramID string       `json:"program_id"`
	Sample    stats.Sample `json:"sample"`
}

func (s *server) programStats(w http.ResponseWriter, r *http.Request, p principal) {
	id := r.PathValue("id")
	owner, err := s.h.Owner(r.Context(), id)
	if !s.visible(w, id, owner, err, p) {
		return
	}
	q := r.URL.Query()
	var res stats.Resolution
	if v := q.Get("resolution"); v != "" {
		if res, err = stats.ParseResolution(v); err != nil {
			writeError(w, http.StatusBadRequest, "resolution: "+err.Error())
			return
		}
	}
	since, err := parseSince(q.Get("since"), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, samples, err := s.h.StatsHistory(r.Context(), id, res, since)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, statsBody{
		ProgramID: id, Resolution: res,
		StepSeconds: s.h.StatsPolicy().Step(res).Seconds(), Samples: samples,
	})
}

// parseSince reads since: empty (the zero time: all the series keeps), an
// RFC 3339 time, or a positive duration before now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("since must be an RFC 3339 time (2026-11-30T10:00:00Z) or a positive duration back from now (1h, 30m), not %q", v)
	}
	return now.Add(-d), nil
}

// statsEventOf is the "stats" event of a sample.
func statsEventOf(ps host.ProgramSample) statsEvent {
	return statsEvent{ProgramID: ps.ProgramID, Sample: ps.Sample}
}
