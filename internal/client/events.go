package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hershyorg/hershy/internal/stats"
)

// Event is one server-sent event of GET /events.
type Event struct {
	// Kind is "program" (Program is set; PrevState is empty in the
	// snapshot), "synced" (the snapshot is complete), "build" (Build and
	// ProgramID are set), "stats" (Stats and ProgramID are set: a new
	// sample of a running program's resources), "deleted" (ProgramID is
	// set) or "overflow" (the stream ends; open a new one).
	Kind      string
	Program   *Program
	PrevState string
	ProgramID string
	Build     *BuildProgress
	Stats     *stats.Sample
}

// BuildProgress is how far a program's Go build is.
type BuildProgress struct {
	ProgramID string `json:"program_id"`
	BuildID   string `json:"build_id"`
	Packages  int    `json:"packages"`   // compiled so far (cached ones are not counted)
	ElapsedMS int64  `json:"elapsed_ms"` // since go build started
	Done      bool   `json:"done"`
}

// EventOptions narrow an event stream.
type EventOptions struct {
	ProgramID string // only this program
	UserID    string // only this user's programs (admin)
}

// EventStream reads GET /events. Close it when done.
type EventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Events opens the stream of program changes: the current view of each
// program, a "synced" event, then every change.
func (c *Client) Events(ctx context.Context, opts EventOptions) (*EventStream, error) {
	q := url.Values{}
	if opts.ProgramID != "" {
		q.Set("program_id", opts.ProgramID)
	}
	if opts.UserID != "" {
		q.Set("user_id", opts.UserID)
	}
	path := "/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &EventStream{body: resp.Body, sc: sc}, nil
}

// Next returns the next event; io.EOF when the stream ended.
func (s *EventStream) Next() (Event, error) {
	var kind, data string
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if kind == "" && data == "" {
				continue // a comment's end
			}
			return decodeEvent(kind, data)
		case strings.HasPrefix(line, ":"):
			// a comment (the keep-alive)
		case strings.HasPrefix(line, "event:"):
			kind = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if err := s.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

func decodeEvent(kind, data string) (Event, error) {
	ev := Event{Kind: kind}
	switch kind {
	case "program":
		var v struct {
			Program
			PrevState string `json:"prev_state"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return ev, fmt.Errorf("client: event %s: %w", kind, err)
		}
		ev.Program, ev.PrevState, ev.ProgramID = &v.Program, v.PrevState, v.ProgramID
	case "build":
		var v BuildProgress
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return ev, fmt.Errorf("client: event %s: %w", kind, err)
		}
		ev.Build, ev.ProgramID = &v, v.ProgramID
	case "stats":
		var v struct {
			ProgramID string       `json:"program_id"`
			Sample    stats.Sample `json:"sample"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return ev, fmt.Errorf("client: event %s: %w", kind, err)
		}
		ev.Stats, ev.ProgramID = &v.Sample, v.ProgramID
	case "deleted":
		var v struct {
			ProgramID string `json:"program_id"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return ev, fmt.Errorf("client: event %s: %w", kind, err)
		}
		ev.ProgramID = v.ProgramID
	}
	return ev, nil
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
