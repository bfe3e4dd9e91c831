package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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

// ExportState streams a program's /state as a gzip'd tar (a running
// program is stopped for the copy and started again). Close the reader.
func (c *Client) ExportState(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/programs/"+url.PathEscape(id)+"/state", nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ImportState replaces the /state of a program that does not run with the
// gzip'd tar archive, and returns how many files and bytes it wrote.
func (c *Client) ImportState(ctx context.Context, id string, archive io.Reader) (files int, bytes int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(c.BaseURL, "/")+"/programs/"+url.PathEscape(id)+"/state", archive)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := c.roundTrip(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Files int   `json:"files"`
		Bytes int64 `json:"bytes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, 0, fmt.Errorf("client: import state: decoding answer: %w", err)
	}
	return out.Files, out.Bytes, nil
}
