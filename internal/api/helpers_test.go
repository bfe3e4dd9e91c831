package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/store"
)

type env struct {
	t      *testing.T
	h      *host.Host
	d      *hosttest.Fake
	dir    string
	srv    *httptest.Server
	api    *Server
	admin  string
	tokA   string
	tokB   string
	tokBID string
}

// newEnv opens a Host on a fake engine (hosttest.NewFake), serves the API
// and creates an admin token and tokens for users alice and bob. more
// adjust the Host's options.
func newEnv(t *testing.T, more ...func(*host.Options)) *env {
	t.Helper()
	return newEnvWith(t, Options{}, more...)
}

// newEnvWith is newEnv with API options (DataDir, Version and ProxyBase
// are set here).
func newEnvWith(t *testing.T, opts Options, more ...func(*host.Options)) *env {
	t.Helper()
	d := hosttest.NewFake(t, fake.Options{})
	dir := t.TempDir()
	h := d.Open(t, dir, more...)
	e := &env{t: t, h: h, d: d, dir: dir}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		rows, _, _ := h.List(ctx, store.ProgramFilter{})
		for _, r := range rows {
			h.Delete(ctx, r.ID)
		}
	})
	tok, _, created, err := h.Tokens().EnsureAdmin(context.Background(), dir)
	if err != nil || !created {
		t.Fatalf("admin token: %v %v", created, err)
	}
	e.admin = tok
	e.srv = httptest.NewUnstartedServer(nil)
	opts.DataDir, opts.Version, opts.ProxyBase = dir, "test", "http://"+e.srv.Listener.Addr().String()
	handler, err := New(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.api = handler
	t.Cleanup(func() { handler.Close() })
	e.srv.Config.Handler = handler
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	var out map[string]any
	e.do("POST", "/tokens", e.admin, `{"user_id":"alice"}`, 201, &out)
	e.tokA = out["token"].(string)
	e.do("POST", "/tokens", e.admin, `{"user_id":"bob"}`, 201, &out)
	e.tokB, e.tokBID = out["token"].(string), out["id"].(string)
	return e
}

// req sends a request; body "" means none, otherwise JSON.
func (e *env) req(method, path, tok, body string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// do sends a request, checks the status and decodes the JSON answer.
func (e *env) do(method, path, tok, body string, want int, out any) *http.Response {
	e.t.Helper()
	resp, b := e.req(method, path, tok, body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp
}

// checkError asserts a JSON error body with the given code.
func checkError(t *testing.T, what string, resp *http.Response, b []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Errorf("%s: status %d, want %d: %s", what, resp.StatusCode, want, b)
		return
	}
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Code != want || eb.Error != http.StatusText(want) || eb.Message == "" {
		t.Errorf("%s: error body %q (%v)", what, b, err)
	}
	if want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: 401 without WWW-Authenticate: Bearer", what)
	}
}
