package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/hershyorg/hershy/internal/stats"
)

// ProgramStats is a program's resource history (GET /programs/{id}/stats).
type ProgramStats struct {
	ProgramID   string         `json:"program_id"`
	Resolution  string         `json:"resolution"` // "fine" or "coarse"
	StepSeconds float64        `json:"step_seconds"`
	Samples     []stats.Sample `json:"samples"` // oldest first
}

// StatsOptions select a part of the history: Since is an RFC 3339 time
// or a duration back from now ("1h"), Resolution "fine" or "coarse"; empty
// fields leave the choice to the Host.
type StatsOptions struct {
	Since      string
	Resolution string
}

// Stats fetches a program's resource history.
func (c *Client) Stats(ctx context.Context, id string, opts StatsOptions) (*ProgramStats, error) {
	q := url.Values{}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	if opts.Resolution != "" {
		q.Set("resolution", opts.Resolution)
	}
	p := "/programs/" + url.PathEscape(id) + "/stats"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out ProgramStats
	return &out, c.do(ctx, http.MethodGet, p, nil, &out)
}
