package ui

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
)

// Resource history comes from GET /programs/{id}/stats (the Host's
// sampler). A 404 there, from a Host without the route or for a program
// with nothing sampled yet, is shown as "no history yet".

// sparks are a program's small CPU and memory charts on the programs page.
type sparks struct {
	Has      bool
	CPU, Mem template.HTML
	CPUNow   string // the latest value, in words
	MemNow   string
}

// fetchStats reads a program's history since (a duration such as "1h").
// A 404 is no history: nil, nil.
func fetchStats(ctx context.Context, c *apiClient, id, since, resolution string) (*stats, error) {
	var st stats
	err := c.get(ctx, programPath(id, "/stats?since="+url.QueryEscape(since)+"&resolution="+url.QueryEscape(resolution)), &st)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}
