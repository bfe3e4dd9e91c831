// Package client is a small typed Go client for the Hershy Host HTTP API.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultURL is where a Host listens unless configured otherwise.
const DefaultURL = "http://127.0.0.1:18080"

// Client talks to one Host with one bearer token.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client // defaults to a client without an overall timeout (streams)
}

// New returns a Client for baseURL (DefaultURL if empty).
func New(baseURL, token string) *Client {
	if baseURL == "" {
		baseURL = DefaultURL
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{}}
}

// Error is an API error answer: {error, code, message}.
type Error struct {
	Status  int    `json:"-"`       // HTTP status of the answer
	Code    int    `json:"code"`    // code from the body (usually the status)
	Err     string `json:"error"`   // status text
	Message string `json:"message"` // detail
}

func (e *Error) Error() string {
	code := e.Code
	if code == 0 {
		code = e.Status
	}
	text := e.Err
	if text == "" {
		text = http.StatusText(code)
	}
	if e.Message != "" && e.Message != text {
		return fmt.Sprintf("%s (%d): %s", text, code, e.Message)
	}
	return fmt.Sprintf("%s (%d)", text, code)
}

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == status || e.Code == status)
}

// Program is one program as the API answers it.
type Program struct {
	ProgramID     string          `json:"program_id"`
	BuildID       string          `json:"build_id"`
	UserID        string          `json:"user_id"`
	State         string          `json:"state"`
	ImageID       string          `json:"image_id,omitempty"`
	ContainerID   string          `json:"container_id,omitempty"`
	ProxyURL      string          `json:"proxy_url,omitempty"`
	ErrorMsg      string          `json:"error_msg,omitempty"`
	CreatedAt     string          `json:"created_at,omitempty"`
	UpdatedAt     string          `json:"updated_at,omitempty"`
	Runtime       string          `json:"runtime,omitempty"`
	RestartPolicy json.RawMessage `json:"restart_policy,omitempty"`
	RestartCount  int             `json:"restart_count"`
	NextRestartAt *string         `json:"next_restart_at,omitempty"`
	LastExitCode  *int            `json:"last_exit_code,omitempty"`
	// What the program stores in /state and its size cap (absent when the
	// Host runs uncapped).
	StateBytesUsed  *int64 `json:"state_bytes_used,omitempty"`
	StateBytesLimit *int64 `json:"state_bytes_limit,omitempty"`
	// ProxyPort is the program's loopback port to its WatcherAPI (serve
	// --proxy-ports); QueuePosition its place in the build queue while it
	// waits to build (n: n-1 builds ahead).
	ProxyPort     int `json:"proxy_port,omitempty"`
	QueuePosition int `json:"queue_position,omitempty"`
	// Seq grows with every action the Host takes for the program; a view
	// with a seq at least an action's answer's reflects that action.
	Seq uint64 `json:"seq"`
	// WatcherAPI, while Ready: whether the program's WatcherAPI answered
	// the Host's last check, and since when.
	WatcherAPI *WatcherAnswer `json:"watcher_api,omitempty"`
}

// WatcherAnswer is what the Host's last check of a Ready program's
// WatcherAPI found.
type WatcherAnswer struct {
	Answering bool   `json:"answering"`
	Since     string `json:"since"`
	Problem   string `json:"problem,omitempty"`
}

// Created parses CreatedAt (RFC 3339); the zero time if absent or malformed.
func (p *Program) Created() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, p.CreatedAt)
	return t
}

// SourceRequest is the body of POST /programs and PUT /programs/{id}/source.
type SourceRequest struct {
	UserID        string            `json:"user_id,omitempty"`
	Dockerfile    string            `json:"dockerfile,omitempty"`
	SrcFiles      map[string]string `json:"src_files"`
	Network       *bool             `json:"network,omitempty"`
	MemoryBytes   int64             `json:"memory_bytes,omitempty"`
	CPUs          float64           `json:"cpus,omitempty"`
	RestartPolicy string            `json:"restart_policy,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	StateBytes    int64             `json:"state_bytes,omitempty"` // size cap of /state (0: the Host's default)
}

// CreateResponse answers POST /programs (and source replacement).
type CreateResponse struct {
	ProgramID string `json:"program_id"`
	BuildID   string `json:"build_id"`
	State     string `json:"state"`
	ProxyURL  string `json:"proxy_url"`
	CreatedAt string `json:"created_at"`
}

// ProgramList answers GET /programs.
type ProgramList struct {
	Programs []Program `json:"programs"`
	Count    int       `json:"count"`
	Total    int       `json:"total"`
}

// ListOptions filters GET /programs.
type ListOptions struct {
	State  string
	UserID string
	Limit  int
	Offset int
}

// ActionResponse answers start, stop and restart.
type ActionResponse struct {
	ProgramID string `json:"program_id"`
	State     string `json:"state"`
	Message   string `json:"message"`
	Seq       uint64 `json:"seq"` // see Program.Seq
}

// Source answers GET /programs/{id}/source.
type Source struct {
	ProgramID   string            `json:"program_id"`
	Files       map[string]string `json:"files"` // a Dockerfile source's Dockerfile is the file "Dockerfile"
	RetrievedAt string            `json:"retrieved_at,omitempty"`
}

// Logs answers GET /programs/{id}/logs.
type Logs struct {
	ProgramID   string `json:"program_id"`
	ContainerID string `json:"container_id"`
	Logs        string `json:"logs"`
	Timestamp   string `json:"timestamp"`
}

// LogOptions selects container logs.
type LogOptions struct {
	Tail  int    // last N lines (0: server default)
	Since string // RFC 3339 time, or a duration meaning that long ago
}

// Token answers POST /tokens; the token itself is only shown once.
type Token struct {
	Token     string `json:"token,omitempty"`
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	CreatedAt string `json:"created_at,omitempty"`
	Admin     bool   `json:"admin,omitempty"`
	RevokedAt string `json:"revoked_at,omitempty"`
}

// CreateProgram stores a new program's source (POST /programs).
func (c *Client) CreateProgram(ctx context.Context, req SourceRequest) (*CreateResponse, error) {
	var out CreateResponse
	return &out, c.do(ctx, http.MethodPost, "/programs", req, &out)
}

// UpdateSource replaces a program's source (PUT /programs/{id}/source).
func (c *Client) UpdateSource(ctx context.Context, id string, req SourceRequest) (*CreateResponse, error) {
	var out CreateResponse
	return &out, c.do(ctx, http.MethodPut, "/programs/"+url.PathEscape(id)+"/source", req, &out)
}

// ListPrograms lists programs (GET /programs).
func (c *Client) ListPrograms(ctx context.Context, opts ListOptions) (*ProgramList, error) {
	q := url.Values{}
	if opts.State != "" {
		q.Set("state", opts.State)
	}
	if opts.UserID != "" {
		q.Set("user_id", opts.UserID)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Offset > 0 {
		q.Set("offset", strconv.Itoa(opts.Offset))
	}
	p := "/programs"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out ProgramList
	return &out, c.do(ctx, http.MethodGet, p, nil, &out)
}

// GetProgram fetches one program.
func (c *Client) GetProgram(ctx context.Context, id string) (*Program, error) {
	var out Program
	return &out, c.do(ctx, http.MethodGet, "/programs/"+url.PathEscape(id), nil, &out)
}

// DeleteProgram stops and removes a program.
func (c *Client) DeleteProgram(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/programs/"+url.PathEscape(id), nil, nil)
}

// DeleteProgramKeepState removes a program but keeps its /state volume
// (a Host on a cluster only).
func (c *Client) DeleteProgramKeepState(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/programs/"+url.PathEscape(id)+"?keep_state=true", nil, nil)
}

// Start builds if needed and runs a program.
func (c *Client) Start(ctx context.Context, id string) (*ActionResponse, error) {
	return c.action(ctx, id, "start")
}

// Stop stops a program gracefully.
func (c *Client) Stop(ctx context.Context, id string) (*ActionResponse, error) {
	return c.action(ctx, id, "stop")
}

// Restart stops then starts a program.
func (c *Client) Restart(ctx context.Context, id string) (*ActionResponse, error) {
	return c.action(ctx, id, "restart")
}

func (c *Client) action(ctx context.Context, id, verb string) (*ActionResponse, error) {
	var out ActionResponse
	return &out, c.do(ctx, http.MethodPost, "/programs/"+url.PathEscape(id)+"/"+verb, nil, &out)
}

// GetSource fetches the stored source.
func (c *Client) GetSource(ctx context.Context, id string) (*Source, error) {
	var out Source
	return &out, c.do(ctx, http.MethodGet, "/programs/"+url.PathEscape(id)+"/source", nil, &out)
}

// BuildLog opens the build log; with follow it streams until the build ends.
// The caller closes the reader.
func (c *Client) BuildLog(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	p := "/programs/" + url.PathEscape(id) + "/build-log"
	if follow {
		p += "?follow=1"
	}
	resp, err := c.send(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func logQuery(opts LogOptions, follow bool) string {
	q := url.Values{}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Since != "" {
		since := opts.Since
		// The Host wants RFC 3339; a duration means "that long ago".
		if d, err := time.ParseDuration(since); err == nil {
			since = time.Now().Add(-d).UTC().Format(time.RFC3339)
		}
		q.Set("since", since)
	}
	if follow {
		q.Set("follow", "1")
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// Logs fetches a program's container logs.
func (c *Client) Logs(ctx context.Context, id string, opts LogOptions) (*Logs, error) {
	var out Logs
	return &out, c.do(ctx, http.MethodGet, "/programs/"+url.PathEscape(id)+"/logs"+logQuery(opts, false), nil, &out)
}

// FollowLogs streams container logs (server-sent events), calling fn with each
// line until the stream ends, ctx is done or fn returns an error.
func (c *Client) FollowLogs(ctx context.Context, id string, opts LogOptions, fn func(line string) error) error {
	resp, err := c.send(ctx, http.MethodGet, "/programs/"+url.PathEscape(id)+"/logs"+logQuery(opts, true), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // event:, id:, comments, blank separators
		}
		data = strings.TrimPrefix(data, " ")
		if err := fn(data); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// Proxy sends a request to the program's WatcherAPI through the Host's proxy.
// path is relative to /watcher/ (for example "status"); in and out are JSON
// (either may be nil).
func (c *Client) Proxy(ctx context.Context, method, id, path string, in, out any) error {
	return c.do(ctx, method, "/programs/"+url.PathEscape(id)+"/proxy/watcher/"+strings.TrimLeft(path, "/"), in, out)
}

// WatcherStatus is GET /watcher/status.
type WatcherStatus struct {
	State      string `json:"state"`
	IsRunning  bool   `json:"isRunning"`
	Uptime     any    `json:"uptime"`
	LastUpdate any    `json:"lastUpdate"`
}

// Signal is one recent signal.
type Signal struct {
	Type      string `json:"type"`
	Content   any    `json:"content"`
	CreatedAt string `json:"createdAt"`
}

// WatcherSignals is GET /watcher/signals.
type WatcherSignals struct {
	VarSigCount     int      `json:"varSigCount"`
	UserSigCount    int      `json:"userSigCount"`
	WatcherSigCount int      `json:"watcherSigCount"`
	TotalPending    int      `json:"totalPending"`
	RecentSignals   []Signal `json:"recentSignals"`
	Timestamp       string   `json:"timestamp"`
}

// WatcherVarState is GET /watcher/varState.
type WatcherVarState struct {
	Variables map[string]any `json:"variables"`
	Count     int            `json:"count"`
	Timestamp string         `json:"timestamp"`
}

// WatcherStatus fetches the program's WatcherAPI status.
func (c *Client) WatcherStatus(ctx context.Context, id string) (*WatcherStatus, error) {
	var out WatcherStatus
	return &out, c.Proxy(ctx, http.MethodGet, id, "status", nil, &out)
}

// WatcherSignals fetches pending signal counts and recent signals.
func (c *Client) WatcherSignals(ctx context.Context, id string) (*WatcherSignals, error) {
	var out WatcherSignals
	return &out, c.Proxy(ctx, http.MethodGet, id, "signals", nil, &out)
}

// WatcherVarState fetches the watched variables' values.
func (c *Client) WatcherVarState(ctx context.Context, id string) (*WatcherVarState, error) {
	var out WatcherVarState
	return &out, c.Proxy(ctx, http.MethodGet, id, "varState", nil, &out)
}

// SendMessage posts a user message to the program (POST /watcher/message).
func (c *Client) SendMessage(ctx context.Context, id, content string) (map[string]any, error) {
	out := map[string]any{}
	return out, c.Proxy(ctx, http.MethodPost, id, "message", map[string]string{"content": content}, &out)
}

// CreateToken creates a token for user (admin only).
func (c *Client) CreateToken(ctx context.Context, userID string) (*Token, error) {
	var out Token
	return &out, c.do(ctx, http.MethodPost, "/tokens", map[string]string{"user_id": userID}, &out)
}

// ListTokens lists tokens (without their secrets).
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/tokens", nil, &raw); err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	var toks []Token
	if len(raw) > 0 && raw[0] == '[' {
		return toks, json.Unmarshal(raw, &toks)
	}
	var wrap struct {
		Tokens []Token `json:"tokens"`
	}
	if err := json.Unmarshal(raw, &wrap); err != nil {
		return nil, fmt.Errorf("client: decoding token list: %w", err)
	}
	return wrap.Tokens, nil
}

// RevokeToken revokes a token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(id), nil, nil)
}

// do sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

// send performs the request; non-2xx answers become *Error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.roundTrip(req)
}

// roundTrip sends a request with the token; non-2xx answers become *Error.
func (c *Client) roundTrip(req *http.Request) (*http.Response, error) {
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(data, e) != nil || (e.Err == "" && e.Message == "") {
		e.Err = http.StatusText(resp.StatusCode)
		e.Message = strings.TrimSpace(string(data))
	}
	if e.Code == 0 {
		e.Code = resp.StatusCode
	}
	return nil, e
}
