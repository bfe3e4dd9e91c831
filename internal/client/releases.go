package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Release is one of a program's kept releases.
type Release struct {
	Number    int       `json:"number"`
	BuildID   string    `json:"build_id"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Digest    string    `json:"digest"`
	Note      string    `json:"note,omitempty"`
	Current   bool      `json:"current"`
}

// Releases lists a program's kept releases, newest first.
func (c *Client) Releases(ctx context.Context, id string) ([]Release, error) {
	var out struct {
		Releases []Release `json:"releases"`
	}
	err := c.do(ctx, http.MethodGet, "/programs/"+url.PathEscape(id)+"/releases", nil, &out)
	return out.Releases, err
}

// RollbackResponse is what a rollback made: the new release and the
// program as it is now.
type RollbackResponse struct {
	Release Release `json:"release"`
	Program Program `json:"program"`
}

// Rollback starts a program on an earlier release (to; 0: the one before
// the newest), keeping /state.
func (c *Client) Rollback(ctx context.Context, id string, to int) (*RollbackResponse, error) {
	var out RollbackResponse
	return &out, c.do(ctx, http.MethodPost, "/programs/"+url.PathEscape(id)+"/rollback", map[string]int{"to": to}, &out)
}
