package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// The dashboard is a client of the Host's own API, in the same process:
// every read and every action is a request to the API handler carrying the
// signed-in user's token as its bearer. So the dashboard can do nothing
// the token could not do with curl, and the API remains the one place that
// decides who may do what.

// apiBase is the host name of in-process requests; it never reaches a
// network.
const apiBase = "http://hershy-api.invalid"

// apiError is an API answer with a 4xx or 5xx status; Message is the API's
// own words (which already say what to do, such as which quota and by how
// much).
type apiError struct {
	Status  int
	Message string
	Body    []byte // the answer as it came (a 503 /healthz says what is down)
}

func (e *apiError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return http.StatusText(e.Status)
}

// isStatus reports whether err is an API answer with this status.
func isStatus(err error, status int) bool {
	e, ok := err.(*apiError)
	return ok && e.Status == status
}

// apiClient calls the API handler as one token.
type apiClient struct {
	api   http.Handler
	token string
	// revoked is called when the API refuses the token (401): it was
	// revoked since sign-in, and the session ends.
	revoked func()
}

// bufferWriter collects an in-process answer. Streams are never read
// through it (the pass-through serves those to the browser directly), so
// an answer is bounded by what the API itself bounds.
type bufferWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.h }
func (w *bufferWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}
func (w *bufferWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

// raw sends one request and returns the answer's body; a non-2xx answer
// is an *apiError with the API's message.
func (c *apiClient) raw(ctx context.Context, method, path string, in any) ([]byte, http.Header, error) {
	body := io.Reader(http.NoBody)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	r, err := http.NewRequestWithContext(ctx, method, apiBase+path, body)
	if err != nil {
		return nil, nil, err
	}
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0" // in process
	if in != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Authorization", "Bearer "+c.token)
	w := &bufferWriter{h: http.Header{}}
	c.api.ServeHTTP(w, r)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.code == http.StatusUnauthorized && c.revoked != nil {
		c.revoked()
	}
	if w.code/100 != 2 {
		e := &apiError{Status: w.code, Body: w.body.Bytes()}
		var eb struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(w.body.Bytes(), &eb) == nil {
			e.Message = eb.Message
			if e.Message == "" {
				e.Message = eb.Error
			}
		} else {
			e.Message = strings.TrimSpace(w.body.String())
		}
		return nil, w.h, e
	}
	return w.body.Bytes(), w.h, nil
}

// call sends a request with a JSON body (in, may be nil) and decodes the
// JSON answer into out (may be nil).
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	b, _, err := c.raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// get is call for GET.
func (c *apiClient) get(ctx context.Context, path string, out any) error {
	return c.call(ctx, http.MethodGet, path, nil, out)
}

// programPath is /programs/{id} plus more, with the id escaped.
func programPath(id string, more ...string) string {
	return "/programs/" + url.PathEscape(id) + strings.Join(more, "")
}
