package hershtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing/synctest"
)

// Var returns the current value of the watched variable name (a WatchCall,
// WatchFlow or WatchTick of the running session) and whether it has one.
// It fails the test if the variable holds a value of another type than T.
func Var[T any](h *Watcher, name string) (T, bool) {
	h.t.Helper()
	return typed[T](h, "Var", name, h.W.VarState())
}

// Memo returns the value memoized under name in the running session and
// whether there is one. It fails the test if the value is of another type
// than T.
func Memo[T any](h *Watcher, name string) (T, bool) {
	h.t.Helper()
	return typed[T](h, "Memo", name, h.W.MemoCache())
}

func typed[T any](h *Watcher, what, name string, values map[string]any) (T, bool) {
	h.t.Helper()
	var zero T
	v, ok := values[name]
	if !ok {
		return zero, false
	}
	t, ok := v.(T)
	if !ok {
		h.t.Errorf("hershtest: %s(%q) holds a %T, not a %T", what, name, v, zero)
		return zero, false
	}
	return t, true
}

// API serves one request to the WatcherAPI through hersh.Watcher.Handler,
// as the Host's proxy would, waits until the watcher has settled (so a
// message POSTed to /watcher/message has run, if it could) and returns the
// recorded response. A non-empty body is sent as JSON. target is a path
// with an optional query, such as "/watcher/logs?type=effect_result".
func (h *Watcher) API(method, target, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		h.t.Fatalf("hershtest: API(%s %s): %v", method, target, err)
		return nil
	}
	synctest.Wait()
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.W.Handler().ServeHTTP(rec, req)
	synctest.Wait()
	return rec
}

// GetJSON GETs target from the WatcherAPI and decodes the answer into v
// (a pointer, typically to a struct naming the fields the test reads). It
// fails the test unless the answer is 200 with JSON that decodes into v.
func (h *Watcher) GetJSON(target string, v any) {
	h.t.Helper()
	rec := h.API("GET", target, "")
	if rec == nil {
		return
	}
	if rec.Code != 200 {
		h.t.Fatalf("hershtest: GET %s: %d %s", target, rec.Code, strings.TrimSpace(rec.Body.String()))
		return
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		h.t.Fatalf("hershtest: GET %s: decoding %s into %T: %v", target, strings.TrimSpace(rec.Body.String()), v, err)
	}
}
