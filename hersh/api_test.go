package hersh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh/internal/leaktest"
)

// Tests of the WatcherAPI (the routes and answers users' scripts rely on). Tests that drive Handler with
// httptest.NewRecorder run inside a synctest bubble: no network, a fake
// clock, and synctest.Wait instead of polling. Tests over real HTTP (always
// to 127.0.0.1) run outside bubbles, check for leaked goroutines, and wait on
// conditions with a generous deadline, never on elapsed time.
//
// Every helper here is prefixed with "api" so it cannot collide with the
// helpers of other test files in package hersh.

// ---------------------------------------------------------------- helpers

// apiRuns records one line per run of a managed function.
type apiRuns struct {
	mu  sync.Mutex
	got []string
}

func (r *apiRuns) add(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}

func (r *apiRuns) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// apiTriggerText names a run by its trigger: "start", "msg:<content>",
// "vars:<names>", "recovery".
func apiTriggerText(c *Context) string {
	t := c.Trigger()
	switch t.Kind {
	case TriggerMessage:
		return "msg:" + t.Message.Content
	case TriggerVars:
		return "vars:" + strings.Join(t.Vars, ",")
	}
	return t.Kind.String()
}

func apiNew(t testing.TB, cfg Config, fn ManagedFunc) *Watcher {
	t.Helper()
	w, err := New(cfg, fn)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w
}

func apiStart(t testing.TB, w *Watcher) {
	t.Helper()
	if err := w.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

// apiStop stops w; it fails the test if the session does not end in 10 s.
func apiStop(t testing.TB, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// apiWaitFor polls cond until it holds, failing after a deadline. For use
// outside synctest bubbles only (inside one, use synctest.Wait).
func apiWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// apiResponse is one WatcherAPI answer.
type apiResponse struct {
	code   int
	header http.Header
	raw    []byte
	body   map[string]any // nil for HEAD
}

// apiParse checks what every WatcherAPI answer must be: a JSON content type
// and a body holding exactly one JSON object (never empty, even on errors).
func apiParse(method string, code int, h http.Header, raw []byte) (apiResponse, error) {
	r := apiResponse{code: code, header: h, raw: raw}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		return r, fmt.Errorf("%s: Content-Type %q, want application/json", method, ct)
	}
	if method == http.MethodHead {
		return r, nil
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return r, fmt.Errorf("%s: status %d with an empty body", method, code)
	}
	if !json.Valid(raw) {
		return r, fmt.Errorf("%s: status %d with invalid JSON: %.300s", method, code, raw)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil || r.body == nil {
		return r, fmt.Errorf("%s: body is not a JSON object (%v): %.300s", method, err, raw)
	}
	return r, nil
}

// apiTryServe sends one request to h through a ResponseRecorder.
func apiTryServe(h http.Handler, method, target, body string) (apiResponse, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r, err := apiParse(method, rec.Code, rec.Header(), rec.Body.Bytes())
	if err != nil {
		err = fmt.Errorf("%s %s: %w", method, target, err)
	}
	return r, err
}

func apiServe(t testing.TB, h http.Handler, method, target, body string) apiResponse {
	t.Helper()
	r, err := apiTryServe(h, method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// apiGetOK sends GET target to h and requires 200.
func apiGetOK(t testing.TB, h http.Handler, target string) map[string]any {
	t.Helper()
	r := apiServe(t, h, http.MethodGet, target, "")
	if r.code != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200: %s", target, r.code, r.raw)
	}
	return r.body
}

// apiClient returns a client whose idle connections are closed when the
// test ends (before leaktest looks at the goroutines).
func apiClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// apiTryHTTP sends one request over real HTTP. It refuses any address
// other than 127.0.0.1.
func apiTryHTTP(c *http.Client, method, url, body string) (apiResponse, error) {
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return apiResponse{}, fmt.Errorf("refusing to send a request to %s: tests talk to 127.0.0.1 only", url)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return apiResponse{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return apiResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResponse{}, err
	}
	r, err := apiParse(method, resp.StatusCode, resp.Header, raw)
	if err != nil {
		err = fmt.Errorf("%s %s: %w", method, url, err)
	}
	return r, err
}

func apiHTTP(t testing.TB, c *http.Client, method, url, body string) apiResponse {
	t.Helper()
	r, err := apiTryHTTP(c, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// apiAs returns m[key] as a T, failing when it is missing or another type.
// JSON numbers are float64, objects map[string]any, arrays []any.
func apiAs[T any](t testing.TB, m map[string]any, key string) T {
	t.Helper()
	v, ok := m[key]
	if !ok {
		t.Fatalf("field %q missing in %v", key, m)
	}
	x, ok := v.(T)
	if !ok {
		var zero T
		t.Fatalf("field %q is %T (%v), want %T", key, v, v, zero)
	}
	return x
}

// apiKeys fails unless m has exactly the given keys.
func apiKeys(t testing.TB, what string, m map[string]any, keys ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: fields %v, want %v", what, got, want)
	}
}

// apiTime parses a JSON timestamp field.
func apiTime(t testing.TB, m map[string]any, key string) time.Time {
	t.Helper()
	s := apiAs[string](t, m, key)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("field %q = %q is not an RFC 3339 time: %v", key, s, err)
	}
	return tm
}

// apiErrorBody checks an error answer: code, and a body {"error": "..."}.
func apiErrorBody(t testing.TB, what string, r apiResponse, code int, contains string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: status %d, want %d: %s", what, r.code, code, r.raw)
		return
	}
	apiKeys(t, what, r.body, "error")
	msg, _ := r.body["error"].(string)
	if msg == "" {
		t.Errorf("%s: error message is empty: %s", what, r.raw)
	}
	if !strings.Contains(msg, contains) {
		t.Errorf("%s: error %q does not mention %q", what, msg, contains)
	}
}

var apiLogFields = []string{"effectLogs", "reduceLogs", "watchErrorLogs", "contextLogs", "stateFaultLogs", "effectResults"}

// apiAllRoutes are the GET routes, for tests that call them all.
var apiAllRoutes = []string{
	"/watcher/status", "/watcher/ready", "/watcher/logs", "/watcher/logs?type=effect_result&limit=3",
	"/watcher/signals", "/watcher/watching", "/watcher/memoCache", "/watcher/varState", "/watcher/config",
}

// ---------------------------------------------------------------- routes and field names

func TestAPIRoutesAnswerDocumentedFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		flow := make(chan int)
		var runs apiRuns
		cfg := Config{DisableAPIServer: true, APIAddr: "127.0.0.1:9431", SignalCapacity: 64, MaxLogEntries: 500, MaxMemoEntries: 7}
		w := apiNew(t, cfg, func(c *Context) error {
			runs.add(apiTriggerText(c))
			if _, err := Memo(c, "greeting", func() (string, error) { return "hello", nil }); err != nil {
				return err
			}
			WatchFlow(c, "flow", flow)
			return nil
		})
		h := w.Handler()
		apiStart(t, w)
		synctest.Wait()
		// The bubble's clock is fake: this advances it by exactly 90 s at once.
		time.Sleep(90 * time.Second)

		msg := apiServe(t, h, http.MethodPost, "/watcher/message", `{"content":"hi"}`)
		if msg.code != http.StatusOK {
			t.Fatalf("POST message: status %d: %s", msg.code, msg.raw)
		}
		apiKeys(t, "message", msg.body, "status")
		if got := apiAs[string](t, msg.body, "status"); got != "message sent" {
			t.Errorf("message status = %q, want %q", got, "message sent")
		}
		synctest.Wait()
		flow <- 7
		synctest.Wait()
		if got, want := runs.list(), []string{"start", "msg:hi", "vars:flow"}; !slices.Equal(got, want) {
			t.Fatalf("runs = %q, want %q", got, want)
		}

		routes := []struct {
			method, path string
			fields       []string // exactly these top-level fields
			check        func(t *testing.T, b map[string]any)
		}{
			{http.MethodGet, "/watcher/status",
				[]string{"state", "isRunning", "uptime", "uptimeSeconds", "lastUpdate", "startedAt", "consecutiveFailures", "runs"},
				func(t *testing.T, b map[string]any) {
					if got := apiAs[string](t, b, "state"); got != "Ready" {
						t.Errorf("state = %q, want Ready", got)
					}
					if !apiAs[bool](t, b, "isRunning") {
						t.Error("isRunning = false while running")
					}
					if got := apiAs[string](t, b, "uptime"); got != "1m30s" {
						t.Errorf("uptime = %q, want 1m30s", got)
					}
					if got := apiAs[float64](t, b, "uptimeSeconds"); got != 90 {
						t.Errorf("uptimeSeconds = %v, want 90", got)
					}
					if d := apiTime(t, b, "lastUpdate").Sub(apiTime(t, b, "startedAt")); d != 90*time.Second {
						t.Errorf("lastUpdate - startedAt = %v, want 90s (the last run)", d)
					}
					if got := apiAs[float64](t, b, "runs"); got != 3 {
						t.Errorf("runs = %v, want 3", got)
					}
					if got := apiAs[float64](t, b, "consecutiveFailures"); got != 0 {
						t.Errorf("consecutiveFailures = %v, want 0", got)
					}
				}},
			{http.MethodGet, "/watcher/logs", apiLogFields, func(t *testing.T, b map[string]any) {
				res := apiAs[[]any](t, b, "effectResults")
				if len(res) != 3 {
					t.Fatalf("effectResults has %d entries, want 3", len(res))
				}
				for i, kind := range []string{"start", "message", "vars"} {
					e := res[i].(map[string]any)
					if got := apiAs[string](t, e, "trigger"); got != kind {
						t.Errorf("effectResults[%d].trigger.kind = %q, want %q", i, got, kind)
					}
					if !apiAs[bool](t, e, "success") {
						t.Errorf("effectResults[%d].success = false", i)
					}
					if got := apiAs[string](t, e, "stateAfter"); got != "Ready" {
						t.Errorf("effectResults[%d].stateAfter = %q, want Ready", i, got)
					}
					if got := apiAs[float64](t, e, "runId"); got != float64(i+1) {
						t.Errorf("effectResults[%d].runId = %v, want %d", i, got, i+1)
					}
				}
				red := apiAs[[]any](t, b, "reduceLogs")
				if len(red) < 2 {
					t.Fatalf("reduceLogs = %v, want NotRun->InitRun->Ready first", red)
				}
				for i, want := range [][2]string{{"NotRun", "InitRun"}, {"InitRun", "Ready"}} {
					e := red[i].(map[string]any)
					if from, to := apiAs[string](t, e, "from"), apiAs[string](t, e, "to"); from != want[0] || to != want[1] {
						t.Errorf("reduceLogs[%d] = %s->%s, want %s->%s", i, from, to, want[0], want[1])
					}
				}
				if n := len(apiAs[[]any](t, b, "effectLogs")); n != 0 {
					t.Errorf("effectLogs has %d entries, want 0 (runs are in effectResults)", n)
				}
				for _, f := range []string{"watchErrorLogs", "contextLogs", "stateFaultLogs"} {
					if n := len(apiAs[[]any](t, b, f)); n != 0 {
						t.Errorf("%s has %d entries, want 0", f, n)
					}
				}
			}},
			{http.MethodGet, "/watcher/signals",
				[]string{"varSigCount", "userSigCount", "watcherSigCount", "totalPending", "recentSignals", "timestamp"},
				func(t *testing.T, b map[string]any) {
					for _, f := range []string{"varSigCount", "userSigCount", "watcherSigCount", "totalPending"} {
						if got := apiAs[float64](t, b, f); got != 0 {
							t.Errorf("%s = %v, want 0 (all handled)", f, got)
						}
					}
					apiTime(t, b, "timestamp")
					rec := apiAs[[]any](t, b, "recentSignals")
					var got []string
					for _, e := range rec {
						m := e.(map[string]any)
						apiKeys(t, "recentSignals entry", m, "type", "content", "createdAt")
						apiTime(t, m, "createdAt")
						got = append(got, apiAs[string](t, m, "type")+":"+apiAs[string](t, m, "content"))
					}
					if want := []string{"user:hi", "var:flow"}; !slices.Equal(got, want) {
						t.Errorf("recentSignals = %q, want %q", got, want)
					}
				}},
			{http.MethodGet, "/watcher/watching", []string{"watchedVars", "details", "count", "timestamp"},
				func(t *testing.T, b map[string]any) {
					if got := apiAs[[]any](t, b, "watchedVars"); len(got) != 1 || got[0] != "flow" {
						t.Errorf("watchedVars = %v, want [flow]", got)
					}
					if got := apiAs[float64](t, b, "count"); got != 1 {
						t.Errorf("count = %v, want 1", got)
					}
					d := apiAs[[]any](t, b, "details")
					if len(d) != 1 {
						t.Fatalf("details = %v, want one entry", d)
					}
					m := d[0].(map[string]any)
					if apiAs[string](t, m, "name") != "flow" || apiAs[string](t, m, "kind") != "WatchFlow" || !apiAs[bool](t, m, "hasValue") {
						t.Errorf("details[0] = %v, want name flow, kind WatchFlow, hasValue true", m)
					}
					apiTimestamp(t, b)
				}},
			{http.MethodGet, "/watcher/memoCache", []string{"entries", "count", "timestamp"},
				func(t *testing.T, b map[string]any) {
					e := apiAs[map[string]any](t, b, "entries")
					if len(e) != 1 || e["greeting"] != "hello" {
						t.Errorf("entries = %v, want {greeting: hello}", e)
					}
					if got := apiAs[float64](t, b, "count"); got != 1 {
						t.Errorf("count = %v, want 1", got)
					}
					apiTimestamp(t, b)
				}},
			{http.MethodGet, "/watcher/varState", []string{"variables", "count", "timestamp"},
				func(t *testing.T, b map[string]any) {
					v := apiAs[map[string]any](t, b, "variables")
					if len(v) != 1 || v["flow"] != float64(7) {
						t.Errorf("variables = %v, want {flow: 7}", v)
					}
					if got := apiAs[float64](t, b, "count"); got != 1 {
						t.Errorf("count = %v, want 1", got)
					}
					apiTimestamp(t, b)
				}},
			{http.MethodGet, "/watcher/config", []string{"config", "timestamp"},
				func(t *testing.T, b map[string]any) {
					c := apiAs[map[string]any](t, b, "config")
					for f, want := range map[string]float64{"serverPort": 9431, "signalChanCapacity": 64, "maxLogEntries": 500, "maxMemoEntries": 7} {
						if got := apiAs[float64](t, c, f); got != want {
							t.Errorf("config.%s = %v, want %v", f, got, want)
						}
					}
					if got := apiAs[string](t, c, "apiAddr"); got != "127.0.0.1:9431" {
						t.Errorf("config.apiAddr = %q", got)
					}
					if _, ok := c["listenAddr"]; ok {
						t.Errorf("config.listenAddr = %v with DisableAPIServer, want absent", c["listenAddr"])
					}
					if got := apiAs[string](t, c, "runTimeout"); got != "1m0s" {
						t.Errorf("config.runTimeout = %q, want 1m0s", got)
					}
					apiTimestamp(t, b)
				}},
			{http.MethodGet, "/watcher/ready", []string{"ready", "state"},
				func(t *testing.T, b map[string]any) {
					if !apiAs[bool](t, b, "ready") || apiAs[string](t, b, "state") != "Ready" {
						t.Errorf("ready = %v, want {ready: true, state: Ready}", b)
					}
				}},
		}
		for _, rt := range routes {
			r := apiServe(t, h, rt.method, rt.path, "")
			if r.code != http.StatusOK {
				t.Errorf("%s %s: status %d, want 200: %s", rt.method, rt.path, r.code, r.raw)
				continue
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", rt.path, cc)
			}
			apiKeys(t, rt.path, r.body, rt.fields...)
			rt.check(t, r.body)
			// HEAD is served like GET.
			if hr := apiServe(t, h, http.MethodHead, rt.path, ""); hr.code != http.StatusOK {
				t.Errorf("HEAD %s: status %d, want 200", rt.path, hr.code)
			}
		}

		// After Stop: not ready, not running, uptime frozen at the end.
		apiStop(t, w)
		time.Sleep(time.Hour)
		r := apiServe(t, h, http.MethodGet, "/watcher/ready", "")
		if r.code != http.StatusServiceUnavailable || r.body["ready"] != false || r.body["state"] != "Stopped" {
			t.Errorf("ready after Stop: %d %s, want 503 {ready: false, state: Stopped}", r.code, r.raw)
		}
		st := apiGetOK(t, h, "/watcher/status")
		if st["state"] != "Stopped" || st["isRunning"] != false || st["uptime"] != "1m30s" {
			t.Errorf("status after Stop = %v, want Stopped, not running, uptime 1m30s", st)
		}
		if _, ok := st["lastError"]; ok {
			t.Errorf("status after a clean Stop has lastError %v", st["lastError"])
		}
		sig := apiGetOK(t, h, "/watcher/signals")
		if sig["totalPending"] != float64(0) {
			t.Errorf("signals after Stop: totalPending = %v, want 0", sig["totalPending"])
		}
	})
}

func apiTimestamp(t *testing.T, b map[string]any) {
	t.Helper()
	if apiTime(t, b, "timestamp").IsZero() {
		t.Error("timestamp is zero")
	}
}

// ---------------------------------------------------------------- logs

func TestAPILogsByTypeAndLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		num := NewKey[int]("num")
		numAsText := NewKey[string]("num")
		cfg := Config{DisableAPIServer: true, MaxLogEntries: 200}
		w := apiNew(t, cfg, func(c *Context) error {
			WatchCall(c, "broken", time.Hour, func(context.Context, int) (int, bool, error) {
				return 0, false, errors.New("poll broke")
			})
			if c.Trigger().Kind == TriggerStart {
				if err := num.Set(c, 41); err != nil {
					return err
				}
				if _, err := numAsText.Load(c); err == nil {
					return errors.New("reading an int as a string did not fail")
				}
				return errors.New("warming up") // fails once: a recovery is scheduled
			}
			return nil
		})
		h := w.Handler()
		apiStart(t, w)
		synctest.Wait()
		time.Sleep(time.Second) // the backoff; then the recovery run succeeds
		synctest.Wait()
		for i := 1; i <= 4; i++ {
			if r := apiServe(t, h, http.MethodPost, "/watcher/message", fmt.Sprintf(`{"content":"m%d"}`, i)); r.code != http.StatusOK {
				t.Fatalf("POST message: %d %s", r.code, r.raw)
			}
		}
		synctest.Wait()

		// checks for the one kind a request asked for
		checks := map[string]func(t *testing.T, entries []any){
			"effectLogs": func(t *testing.T, es []any) {
				first := es[0].(map[string]any)
				if first["effect"] != "schedule-recovery" || !strings.Contains(fmt.Sprint(first["detail"]), "warming up") {
					t.Errorf("effectLogs[0] = %v, want the recovery scheduled after the failed start", first)
				}
			},
			"reduceLogs": func(t *testing.T, es []any) {
				first := es[0].(map[string]any)
				if first["from"] != "NotRun" || first["to"] != "InitRun" {
					t.Errorf("reduceLogs[0] = %v, want NotRun -> InitRun", first)
				}
			},
			"effectResults": func(t *testing.T, es []any) {
				if len(es) != 6 {
					t.Fatalf("effectResults has %d entries, want 6 (start, recovery, 4 messages)", len(es))
				}
				if first := es[0].(map[string]any); first["success"] != false || first["error"] != "warming up" {
					t.Errorf("effectResults[0] = %v, want the failed start", first)
				}
				last := es[5].(map[string]any)
				if last["trigger"] != "message" || last["message"] != "m4" || last["success"] != true || last["stateAfter"] != "Ready" {
					t.Errorf("effectResults[5] = %v, want a successful run of m4 ending Ready", last)
				}
			},
			"watchErrorLogs": func(t *testing.T, es []any) {
				e := es[0].(map[string]any)
				if e["var"] != "broken" || e["phase"] != "poll" || !strings.Contains(fmt.Sprint(e["error"]), "poll broke") {
					t.Errorf("watchErrorLogs[0] = %v, want var broken, phase poll, error poll broke", e)
				}
			},
			"contextLogs": func(t *testing.T, es []any) {
				e := es[0].(map[string]any)
				if e["key"] != "num" || e["op"] != "set" || e["value"] != "41" {
					t.Errorf("contextLogs[0] = %v, want key num, op set, value 41", e)
				}
			},
			"stateFaultLogs": func(t *testing.T, es []any) {
				e := es[0].(map[string]any)
				if e["key"] != "num" || !strings.Contains(fmt.Sprint(e["error"]), "does not hold a string") {
					t.Errorf("stateFaultLogs[0] = %v, want key num and a type error", e)
				}
			},
		}
		types := []struct {
			query string
			only  string // the one non-empty field; "" for all
		}{
			{"", ""},
			{"?type=all", ""},
			{"?type=effect", "effectLogs"},
			{"?type=reduce", "reduceLogs"},
			{"?type=effect_result", "effectResults"},
			{"?type=watch_error", "watchErrorLogs"},
			{"?type=context", "contextLogs"},
			{"?type=state_fault", "stateFaultLogs"},
		}
		for _, tc := range types {
			path := "/watcher/logs" + tc.query
			b := apiGetOK(t, h, path)
			apiKeys(t, path, b, apiLogFields...)
			for _, f := range apiLogFields {
				es, ok := b[f].([]any) // an empty kind is [], never null
				if !ok {
					t.Errorf("%s: %s is %T (%v), want an array", path, f, b[f], b[f])
					continue
				}
				if tc.only != "" && f != tc.only {
					if len(es) != 0 {
						t.Errorf("%s: %s has %d entries, want none", path, f, len(es))
					}
					continue
				}
				if len(es) == 0 {
					t.Errorf("%s: %s is empty", path, f)
					continue
				}
				var prev float64
				for i, e := range es {
					id := apiAs[float64](t, e.(map[string]any), "id")
					if id <= prev {
						t.Errorf("%s: %s[%d].id = %v after %v, want increasing", path, f, i, id, prev)
					}
					prev = id
				}
				checks[f](t, es)
			}
		}

		// limit keeps the newest entries, oldest first.
		b := apiGetOK(t, h, "/watcher/logs?type=effect_result&limit=2")
		res := apiAs[[]any](t, b, "effectResults")
		var got []string
		for _, e := range res {
			got = append(got, fmt.Sprint(e.(map[string]any)["message"]))
		}
		if want := []string{"m3", "m4"}; !slices.Equal(got, want) {
			t.Errorf("limit=2: effectResults for %q, want %q", got, want)
		}
		b = apiGetOK(t, h, "/watcher/logs?limit=1")
		for _, f := range apiLogFields {
			if n := len(apiAs[[]any](t, b, f)); n != 1 {
				t.Errorf("type=all&limit=1: %s has %d entries, want 1", f, n)
			}
		}
		// The largest limit allowed is MaxLogEntries; the default is 100.
		for i := 0; i < 150; i++ {
			if err := w.Send(context.Background(), fmt.Sprint("bulk", i)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		for _, tc := range []struct {
			query string
			want  int
		}{
			{"?type=effect_result", 100},
			{"?type=effect_result&limit=200", 156}, // start, recovery, 4 + 150 messages
			{"?type=effect_result&limit=156", 156},
			{"?type=effect_result&limit=7", 7},
		} {
			b := apiGetOK(t, h, "/watcher/logs"+tc.query)
			if n := len(apiAs[[]any](t, b, "effectResults")); n != tc.want {
				t.Errorf("%s: %d effectResults, want %d", tc.query, n, tc.want)
			}
		}
		apiStop(t, w)
	})
}

// ---------------------------------------------------------------- errors

func TestAPIBadRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs apiRuns
		w := apiNew(t, Config{DisableAPIServer: true, MaxLogEntries: 100}, func(c *Context) error {
			runs.add(apiTriggerText(c))
			return nil
		})
		h := w.Handler()
		apiStart(t, w)
		synctest.Wait()

		tooBig := `{"content":"` + strings.Repeat("a", maxMessageBody) + `"}`
		cases := []struct {
			name, method, path, body string
			code                     int
			contains                 string // in the error message
			allow                    string // Allow header, for 405
		}{
			{"no body", "POST", "/watcher/message", "", 400, "EOF", ""},
			{"empty content", "POST", "/watcher/message", `{"content":""}`, 400, "content must not be empty", ""},
			{"missing content", "POST", "/watcher/message", `{}`, 400, "content must not be empty", ""},
			{"null content", "POST", "/watcher/message", `{"content":null}`, 400, "content must not be empty", ""},
			{"not JSON", "POST", "/watcher/message", `hello`, 400, "invalid character", ""},
			{"truncated JSON", "POST", "/watcher/message", `{"content":"a"`, 400, "EOF", ""},
			{"unknown field", "POST", "/watcher/message", `{"content":"a","priority":1}`, 400, "unknown field", ""},
			{"content not a string", "POST", "/watcher/message", `{"content":5}`, 400, "string", ""},
			{"array", "POST", "/watcher/message", `["a"]`, 400, "cannot unmarshal array", ""},
			{"two objects", "POST", "/watcher/message", `{"content":"a"}{"content":"b"}`, 400, "", ""},
			{"trailing brace", "POST", "/watcher/message", `{"content":"a"}}`, 400, "", ""},
			{"trailing garbage", "POST", "/watcher/message", `{"content":"a"} x`, 400, "invalid character", ""},
			{"body too large", "POST", "/watcher/message", tooBig, 413, "larger than", ""},
			{"bad type", "GET", "/watcher/logs?type=bogus", "", 400, `unknown log type "bogus"`, ""},
			{"type is case-sensitive", "GET", "/watcher/logs?type=EFFECT", "", 400, "unknown log type", ""},
			{"limit zero", "GET", "/watcher/logs?limit=0", "", 400, "limit must be a whole number from 1 to 100", ""},
			{"limit negative", "GET", "/watcher/logs?limit=-3", "", 400, "limit", ""},
			{"limit not a number", "GET", "/watcher/logs?limit=ten", "", 400, "limit", ""},
			{"limit fraction", "GET", "/watcher/logs?limit=1.5", "", 400, "limit", ""},
			{"limit too big", "GET", "/watcher/logs?type=effect&limit=101", "", 400, "from 1 to 100", ""},
			{"limit overflows", "GET", "/watcher/logs?limit=99999999999999999999", "", 400, "limit", ""},
			{"GET message", "GET", "/watcher/message", "", 405, "use POST", "POST"},
			{"POST status", "POST", "/watcher/status", `{"content":"x"}`, 405, "use GET", "GET, HEAD"},
			{"DELETE logs", "DELETE", "/watcher/logs", "", 405, "DELETE is not allowed", "GET, HEAD"},
			{"PUT config", "PUT", "/watcher/config", "{}", 405, "", "GET, HEAD"},
			{"PATCH ready", "PATCH", "/watcher/ready", "", 405, "", "GET, HEAD"},
			{"unknown route", "GET", "/watcher/nope", "", 404, "no such route: /watcher/nope", ""},
			{"root", "GET", "/", "", 404, "no such route", ""},
			{"trailing slash", "GET", "/watcher/status/", "", 404, "no such route", ""},
			{"unknown route POST", "POST", "/watcher/messages", `{"content":"a"}`, 404, "no such route", ""},
		}
		for _, tc := range cases {
			r, err := apiTryServe(h, tc.method, tc.path, tc.body)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			apiErrorBody(t, tc.name, r, tc.code, tc.contains)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s: Allow %q, want %q", tc.name, got, tc.allow)
			}
		}
		synctest.Wait()
		// No bad request reached the queue.
		if got := runs.list(); !slices.Equal(got, []string{"start"}) {
			t.Errorf("runs after bad requests = %q, want only the start run", got)
		}
		sig := apiGetOK(t, h, "/watcher/signals")
		if sig["userSigCount"] != float64(0) || len(apiAs[[]any](t, sig, "recentSignals")) != 0 {
			t.Errorf("signals after bad requests = %v, want nothing received", sig)
		}

		// A large message under the limit is accepted, as is any valid JSON spelling.
		big := strings.Repeat("b", maxMessageBody/2)
		for _, body := range []string{`{"content":"` + big + `"}`, " \n{ \"content\" : \"spaced\" }\n ", `{"content":"\u00e9t\u00e9"}`} {
			if r := apiServe(t, h, http.MethodPost, "/watcher/message", body); r.code != http.StatusOK {
				t.Errorf("POST %.40q: status %d: %s", body, r.code, r.raw)
			}
		}
		synctest.Wait()
		if got, want := runs.list(), []string{"start", "msg:" + big, "msg:spaced", "msg:été"}; !slices.Equal(got, want) {
			t.Errorf("runs = %.120q, want start, the big message, spaced, été", got)
		}
		apiStop(t, w)
	})
}

func TestAPIMessageWhenNotRunningIs409(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs apiRuns
		w := apiNew(t, Config{DisableAPIServer: true}, func(c *Context) error {
			runs.add(apiTriggerText(c))
			if m := c.Message(); m != nil && m.Content == "crash" {
				return Crash("asked to", nil)
			}
			return nil
		})
		h := w.Handler()
		post := func(content string) apiResponse {
			return apiServe(t, h, http.MethodPost, "/watcher/message", `{"content":"`+content+`"}`)
		}
		ready := func(wantCode int, wantState string) {
			t.Helper()
			r := apiServe(t, h, http.MethodGet, "/watcher/ready", "")
			wantReady := wantCode == http.StatusOK
			if r.code != wantCode || r.body["ready"] != wantReady || r.body["state"] != wantState {
				t.Errorf("ready: %d %s, want %d {ready: %v, state: %s}", r.code, r.raw, wantCode, wantReady, wantState)
			}
		}

		// Before the first Start, every read route still answers.
		apiErrorBody(t, "message before Start", post("early"), http.StatusConflict, "not running")
		ready(http.StatusServiceUnavailable, "NotRun")
		st := apiGetOK(t, h, "/watcher/status")
		if st["state"] != "NotRun" || st["isRunning"] != false {
			t.Errorf("status before Start = %v", st)
		}
		for _, p := range []string{"/watcher/watching", "/watcher/memoCache", "/watcher/varState"} {
			if b := apiGetOK(t, h, p); b["count"] != float64(0) {
				t.Errorf("%s before Start: count = %v, want 0", p, b["count"])
			}
		}
		apiGetOK(t, h, "/watcher/config")
		apiGetOK(t, h, "/watcher/logs")
		apiGetOK(t, h, "/watcher/signals")

		apiStart(t, w)
		synctest.Wait()
		ready(http.StatusOK, "Ready")
		if r := post("one"); r.code != http.StatusOK {
			t.Fatalf("message while running: %d %s", r.code, r.raw)
		}
		synctest.Wait()
		apiStop(t, w)
		apiErrorBody(t, "message after Stop", post("late"), http.StatusConflict, "not running")
		ready(http.StatusServiceUnavailable, "Stopped")

		// Restarted after a stop, it takes messages again; after a crash it never does.
		apiStart(t, w)
		synctest.Wait()
		ready(http.StatusOK, "Ready")
		if r := post("crash"); r.code != http.StatusOK {
			t.Fatalf("message while running: %d %s", r.code, r.raw)
		}
		synctest.Wait()
		<-w.Done()
		apiErrorBody(t, "message after a crash", post("after-crash"), http.StatusConflict, "not running")
		ready(http.StatusServiceUnavailable, "Crashed")
		st = apiGetOK(t, h, "/watcher/status")
		if st["state"] != "Crashed" || st["isRunning"] != false || !strings.Contains(fmt.Sprint(st["lastError"]), "asked to") {
			t.Errorf("status after a crash = %v, want Crashed with lastError", st)
		}
		if err := w.Start(); !errors.Is(err, ErrTerminated) {
			t.Errorf("Start after a crash = %v, want ErrTerminated", err)
		}
		apiErrorBody(t, "message after a failed Start", post("x"), http.StatusConflict, "not running")
		if got, want := runs.list(), []string{"start", "msg:one", "start", "msg:crash"}; !slices.Equal(got, want) {
			t.Errorf("runs = %q, want %q", got, want)
		}
	})
}

func TestAPIMessageQueueFullIs503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		var runs apiRuns
		w := apiNew(t, Config{DisableAPIServer: true, SignalCapacity: 1}, func(c *Context) error {
			runs.add(apiTriggerText(c))
			if c.Trigger().Kind == TriggerStart {
				select {
				case <-gate:
				case <-c.Done():
				}
			}
			return nil
		})
		h := w.Handler()
		post := func(content string) apiResponse {
			return apiServe(t, h, http.MethodPost, "/watcher/message", `{"content":"`+content+`"}`)
		}
		apiStart(t, w)
		synctest.Wait() // the start run is now blocked on gate

		if r := post("m1"); r.code != http.StatusOK {
			t.Fatalf("first message: %d %s", r.code, r.raw)
		}
		apiErrorBody(t, "second message", post("m2"), http.StatusServiceUnavailable, "queue is full")
		apiErrorBody(t, "third message", post("m3"), http.StatusServiceUnavailable, "queue is full")
		sig := apiGetOK(t, h, "/watcher/signals")
		if sig["userSigCount"] != float64(1) || sig["totalPending"] != float64(1) {
			t.Errorf("signals with a full queue = %v, want userSigCount 1, totalPending 1", sig)
		}
		if st := apiGetOK(t, h, "/watcher/status"); st["state"] != "InitRun" {
			t.Errorf("state while the start run blocks = %v, want InitRun", st["state"])
		}

		close(gate)
		synctest.Wait()
		if r := post("m4"); r.code != http.StatusOK {
			t.Fatalf("message after the queue drained: %d %s", r.code, r.raw)
		}
		synctest.Wait()
		if got, want := runs.list(), []string{"start", "msg:m1", "msg:m4"}; !slices.Equal(got, want) {
			t.Errorf("runs = %q, want %q (rejected messages never run)", got, want)
		}
		apiStop(t, w)
	})
}

// ---------------------------------------------------------------- unencodable values

type apiFailingJSON struct{}

func (apiFailingJSON) MarshalJSON() ([]byte, error) { return nil, errors.New("refuses to encode") }

type apiPanickingJSON struct{}

func (apiPanickingJSON) MarshalJSON() ([]byte, error) { panic("marshal exploded") }

type apiPanickingErrJSON struct{}

func (apiPanickingErrJSON) MarshalJSON() ([]byte, error) {
	panic(fmt.Errorf("wrapped %w", errors.New("boom")))
}

type apiInvalidJSON struct{}

func (apiInvalidJSON) MarshalJSON() ([]byte, error) { return []byte("{not json"), nil }

// apiValueCases are values a memo or a watched variable may hold. want is
// the decoded JSON for an encodable value; for an unencodable one, the
// replacement string must contain every text in shown.
func apiValueCases() []struct {
	name  string
	v     any
	want  any
	shown []string
} {
	cyclicMap := map[string]any{"a": 1}
	cyclicMap["self"] = cyclicMap
	cyclicSlice := []any{nil}
	cyclicSlice[0] = cyclicSlice
	return []struct {
		name  string
		v     any
		want  any
		shown []string
	}{
		{name: "int", v: 42, want: float64(42)},
		{name: "string", v: "fine", want: "fine"},
		{name: "struct", v: struct{ A []int }{[]int{1, 2}}, want: map[string]any{"A": []any{float64(1), float64(2)}}},
		{name: "nil", v: nil, want: nil},
		{name: "chan", v: make(chan int), shown: []string{"chan int", "unsupported type"}},
		{name: "func", v: func() {}, shown: []string{"func()", "unsupported type"}},
		{name: "failing MarshalJSON", v: apiFailingJSON{}, shown: []string{"hersh.apiFailingJSON", "refuses to encode"}},
		{name: "panicking MarshalJSON", v: apiPanickingJSON{}, shown: []string{"hersh.apiPanickingJSON", "panicked", "marshal exploded"}},
		{name: "MarshalJSON panics with an error", v: apiPanickingErrJSON{}, shown: []string{"panicked", "wrapped boom"}},
		{name: "invalid MarshalJSON output", v: apiInvalidJSON{}, shown: []string{"hersh.apiInvalidJSON", "invalid character"}},
		{name: "cyclic map", v: cyclicMap, shown: []string{"map[string]interface {}", "cycle"}},
		{name: "cyclic slice", v: cyclicSlice, shown: []string{"[]interface {}", "cycle"}},
		{name: "NaN", v: math.NaN(), shown: []string{"float64", "NaN"}},
		{name: "complex", v: complex(1, 2), shown: []string{"complex128"}},
		{name: "struct with a chan", v: struct {
			Name string
			C    chan int
		}{"x", make(chan int)}, shown: []string{"chan int"}},
		{name: "map with array keys", v: map[[2]int]int{{1, 2}: 3}, shown: []string{"map[[2]int]int"}},
	}
}

func TestAPIEncodeOne(t *testing.T) {
	for _, tc := range apiValueCases() {
		t.Run(tc.name, func(t *testing.T) {
			raw := encodeOne(tc.v)
			if !json.Valid(raw) {
				t.Fatalf("encodeOne = %q, not valid JSON", raw)
			}
			var got any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			apiCheckValue(t, tc.name, got, tc.want, tc.shown)
		})
	}
}

func apiCheckValue(t testing.TB, name string, got, want any, shown []string) {
	t.Helper()
	if shown == nil {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: encoded as %#v, want %#v", name, got, want)
		}
		return
	}
	s, ok := got.(string)
	if !ok {
		t.Errorf("%s: shown as %T %v, want a string", name, got, got)
		return
	}
	for _, sub := range append([]string{"<", "unencodable"}, shown...) {
		if !strings.Contains(s, sub) {
			t.Errorf("%s: shown as %q, want it to mention %q", name, s, sub)
		}
	}
}

func TestAPIUnencodableValuesAreShownAsStrings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cases := apiValueCases()
		chans := make([]chan any, len(cases))
		for i := range chans {
			chans[i] = make(chan any)
		}
		w := apiNew(t, Config{DisableAPIServer: true}, func(c *Context) error {
			for i, tc := range cases {
				if _, err := Memo(c, tc.name, func() (any, error) { return tc.v, nil }); err != nil {
					return err
				}
				WatchFlow(c, "var "+tc.name, chans[i]) // hooks share one namespace
			}
			return nil
		})
		h := w.Handler()
		apiStart(t, w)
		synctest.Wait()
		for i, tc := range cases {
			chans[i] <- tc.v
		}
		synctest.Wait()

		for _, rt := range []struct{ path, field, prefix string }{
			{"/watcher/memoCache", "entries", ""},
			{"/watcher/varState", "variables", "var "},
		} {
			b := apiGetOK(t, h, rt.path) // 200 with a valid, non-empty JSON object
			if got := apiAs[float64](t, b, "count"); got != float64(len(cases)) {
				t.Errorf("%s: count = %v, want %d", rt.path, got, len(cases))
			}
			m := apiAs[map[string]any](t, b, rt.field)
			if len(m) != len(cases) {
				t.Errorf("%s: %d %s, want %d", rt.path, len(m), rt.field, len(cases))
			}
			for _, tc := range cases {
				got, ok := m[rt.prefix+tc.name]
				if !ok {
					t.Errorf("%s: %q missing", rt.path, rt.prefix+tc.name)
					continue
				}
				apiCheckValue(t, rt.path+" "+tc.name, got, tc.want, tc.shown)
			}
		}
		// The other routes are unaffected by what the values are.
		for _, p := range apiAllRoutes {
			apiGetOK(t, h, p)
		}
		if st := apiGetOK(t, h, "/watcher/status"); st["state"] != "Ready" {
			t.Errorf("state = %v, want Ready", st["state"])
		}
		apiStop(t, w)
	})
}

// ---------------------------------------------------------------- introspection leaves the queues alone

func TestAPIIntrospectionNeverChangesQueues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		gate := make(chan struct{})
		flow := make(chan int)
		var runs apiRuns
		w := apiNew(t, Config{DisableAPIServer: true, SignalCapacity: 100}, func(c *Context) error {
			runs.add(apiTriggerText(c))
			WatchFlow(c, "flow", flow)
			if _, err := Memo(c, "m", func() (int, error) { return 1, nil }); err != nil {
				return err
			}
			if c.Trigger().Kind == TriggerStart {
				select {
				case <-gate:
				case <-c.Done():
				}
			}
			return nil
		})
		h := w.Handler()
		apiStart(t, w)
		synctest.Wait() // the start run is blocked on gate

		want := []string{"start"}
		for i := 0; i < n; i++ {
			content := fmt.Sprintf("m%02d", i)
			if r := apiServe(t, h, http.MethodPost, "/watcher/message", `{"content":"`+content+`"}`); r.code != http.StatusOK {
				t.Fatalf("POST %s: %d %s", content, r.code, r.raw)
			}
			want = append(want, "msg:"+content)
		}
		flow <- 1
		synctest.Wait()
		// Messages before variables, whatever order they were queued in.
		want = append(want, "vars:flow")

		checkPending := func(b map[string]any) error {
			if b["userSigCount"] != float64(n) || b["varSigCount"] != float64(1) || b["watcherSigCount"] != float64(0) || b["totalPending"] != float64(n+1) {
				return fmt.Errorf("signals = user %v, var %v, watcher %v, total %v; want %d, 1, 0, %d",
					b["userSigCount"], b["varSigCount"], b["watcherSigCount"], b["totalPending"], n, n+1)
			}
			return nil
		}
		// Look many times, sequentially and from several goroutines at once.
		for i := 0; i < 50; i++ {
			for _, p := range apiAllRoutes {
				apiGetOK(t, h, p)
				apiServe(t, h, http.MethodHead, p, "")
			}
			if err := checkPending(apiGetOK(t, h, "/watcher/signals")); err != nil {
				t.Fatal(err)
			}
			if s := w.Signals(); s.UserSigCount != n || s.VarSigCount != 1 {
				t.Fatalf("Signals() = %+v", s)
			}
			w.Status()
			w.VarState()
			w.MemoCache()
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					for _, p := range apiAllRoutes {
						r, err := apiTryServe(h, http.MethodGet, p, "")
						if err == nil && r.code != http.StatusOK {
							err = fmt.Errorf("GET %s: %d", p, r.code)
						}
						if err == nil && p == "/watcher/signals" {
							err = checkPending(r.body)
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := runs.list(); !slices.Equal(got, []string{"start"}) {
			t.Fatalf("runs before release = %q, want only start", got)
		}

		close(gate)
		synctest.Wait()
		if got := runs.list(); !slices.Equal(got, want) {
			t.Errorf("runs = %q\nwant %q", got, want)
		}
		b := apiGetOK(t, h, "/watcher/signals")
		if b["totalPending"] != float64(0) {
			t.Errorf("pending after the queue drained = %v", b)
		}
		apiStop(t, w)
	})
}

// ---------------------------------------------------------------- system signals

func TestAPISignalsShowPendingRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs apiRuns
		cfg := Config{DisableAPIServer: true, Recovery: RecoveryConfig{MaxFailures: 5, Base: time.Hour, Max: time.Hour, Jitter: NoJitter}}
		w := apiNew(t, cfg, func(c *Context) error {
			runs.add(apiTriggerText(c))
			if c.Trigger().Kind == TriggerStart {
				return errors.New("first run fails")
			}
			return nil
		})
		h := w.Handler()
		apiStart(t, w)
		synctest.Wait() // waiting out the backoff

		if r := apiServe(t, h, http.MethodPost, "/watcher/message", `{"content":"during backoff"}`); r.code != http.StatusOK {
			t.Fatalf("POST during backoff: %d %s", r.code, r.raw)
		}
		sig := apiGetOK(t, h, "/watcher/signals")
		if sig["watcherSigCount"] != float64(1) || sig["userSigCount"] != float64(1) || sig["totalPending"] != float64(2) {
			t.Errorf("signals during backoff = %v, want watcher 1, user 1, total 2", sig)
		}
		st := apiGetOK(t, h, "/watcher/status")
		if st["state"] != "WaitRecover" || st["consecutiveFailures"] != float64(1) {
			t.Errorf("status during backoff = %v, want WaitRecover with 1 failure", st)
		}
		if r := apiServe(t, h, http.MethodGet, "/watcher/ready", ""); r.code != http.StatusOK {
			t.Errorf("ready during backoff = %d, want 200 (the session runs)", r.code)
		}

		time.Sleep(time.Hour) // fake clock: exactly the backoff
		synctest.Wait()
		if got, want := runs.list(), []string{"start", "recovery", "msg:during backoff"}; !slices.Equal(got, want) {
			t.Errorf("runs = %q, want %q (system before user)", got, want)
		}
		sig = apiGetOK(t, h, "/watcher/signals")
		if sig["totalPending"] != float64(0) {
			t.Errorf("signals after recovery = %v, want nothing pending", sig)
		}
		st = apiGetOK(t, h, "/watcher/status")
		if st["state"] != "Ready" || st["consecutiveFailures"] != float64(0) {
			t.Errorf("status after recovery = %v, want Ready with 0 failures", st)
		}
		apiStop(t, w)
	})
}

// TestAPISignalsDuringRecoveryIsRaceFree reads the signal counts while the
// engine keeps failing and scheduling recovery runs: under -race this
// catches a read of engine-owned state (the recovery timer) from the API.
func TestAPISignalsDuringRecoveryIsRaceFree(t *testing.T) {
	leaktest.Check(t)
	cfg := Config{DisableAPIServer: true, Recovery: RecoveryConfig{MaxFailures: 150, Base: time.Microsecond, Max: time.Microsecond, Jitter: NoJitter}}
	w := apiNew(t, cfg, func(c *Context) error { return errors.New("always fails") })
	h := w.Handler()
	apiStart(t, w)
	var wg sync.WaitGroup
	var sawRecovery sync.Once
	seen := make(chan struct{})
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-w.Done():
					return
				default:
				}
				if w.Signals().WatcherSigCount == 1 {
					sawRecovery.Do(func() { close(seen) })
				}
				if _, err := apiTryServe(h, http.MethodGet, "/watcher/signals", ""); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	select {
	case <-w.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the watcher did not crash after 150 failures")
	}
	wg.Wait()
	var crash *CrashError
	if !errors.As(w.Err(), &crash) {
		t.Errorf("Err = %v, want a *CrashError", w.Err())
	}
	select {
	case <-seen:
	default:
		t.Log("never observed a pending recovery (timing); the race check still ran")
	}
}

// ---------------------------------------------------------------- the real server

func TestAPIRealServer(t *testing.T) {
	leaktest.Check(t)
	var runs apiRuns
	flow := make(chan string)
	w := apiNew(t, Config{APIAddr: "127.0.0.1:0"}, func(c *Context) error {
		runs.add(apiTriggerText(c))
		WatchFlow(c, "flow", flow)
		_, err := Memo(c, "answer", func() (int, error) { return 42, nil })
		return err
	})
	if got := w.APIAddr(); got != "" {
		t.Errorf("APIAddr before Start = %q, want empty", got)
	}
	apiStart(t, w)
	addr := w.APIAddr()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("APIAddr = %q, want 127.0.0.1 and a real port", addr)
	}
	base := "http://" + addr
	c := apiClient(t)
	apiWaitFor(t, "the start run", func() bool { return len(runs.list()) == 1 })

	// Every route over real HTTP.
	for _, p := range apiAllRoutes {
		if r := apiHTTP(t, c, "GET", base+p, ""); r.code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, r.code, r.raw)
		}
	}
	cfgBody := apiHTTP(t, c, "GET", base+"/watcher/config", "").body
	conf := apiAs[map[string]any](t, cfgBody, "config")
	if conf["listenAddr"] != addr || conf["apiAddr"] != "127.0.0.1:0" || conf["serverPort"] != float64(0) {
		t.Errorf("config = %v, want listenAddr %s, apiAddr 127.0.0.1:0, serverPort 0", conf, addr)
	}
	if r := apiHTTP(t, c, "POST", base+"/watcher/message", `{"content":"over http"}`); r.code != http.StatusOK || r.body["status"] != "message sent" {
		t.Errorf("POST message: %d %s", r.code, r.raw)
	}
	flow <- "v1"
	apiWaitFor(t, "the message and variable runs", func() bool { return len(runs.list()) == 3 })
	if got, want := runs.list(), []string{"start", "msg:over http", "vars:flow"}; !slices.Equal(got, want) {
		t.Errorf("runs = %q, want %q", got, want)
	}
	if b := apiHTTP(t, c, "GET", base+"/watcher/varState", "").body; apiAs[map[string]any](t, b, "variables")["flow"] != "v1" {
		t.Errorf("varState = %v, want flow v1", b)
	}
	if b := apiHTTP(t, c, "GET", base+"/watcher/memoCache", "").body; apiAs[map[string]any](t, b, "entries")["answer"] != float64(42) {
		t.Errorf("memoCache = %v, want answer 42", b)
	}
	head := apiHTTP(t, c, "HEAD", base+"/watcher/status", "")
	if head.code != http.StatusOK || len(head.raw) != 0 {
		t.Errorf("HEAD status: %d with %d body bytes, want 200 and no body", head.code, len(head.raw))
	}
	apiErrorBody(t, "unknown route over HTTP", apiHTTP(t, c, "GET", base+"/nope", ""), http.StatusNotFound, "no such route")
	r := apiHTTP(t, c, "POST", base+"/watcher/status", "")
	apiErrorBody(t, "wrong method over HTTP", r, http.StatusMethodNotAllowed, "use GET")
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow = %q, want GET, HEAD", got)
	}
	apiErrorBody(t, "bad body over HTTP", apiHTTP(t, c, "POST", base+"/watcher/message", `{"content":""}`), http.StatusBadRequest, "empty")

	// Messages sent while others hammer the read routes all run once, in order.
	const n = 150
	before := len(runs.list())
	stopLooking := make(chan struct{})
	var lookers sync.WaitGroup
	for g := 0; g < 3; g++ {
		lookers.Add(1)
		go func() {
			defer lookers.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLooking:
					return
				default:
				}
				p := apiAllRoutes[i%len(apiAllRoutes)]
				if r, err := apiTryHTTP(c, "GET", base+p, ""); err != nil || r.code != http.StatusOK {
					t.Errorf("GET %s while sending: %v %d", p, err, r.code)
					return
				}
			}
		}()
	}
	var want []string
	for i := 0; i < n; i++ {
		content := fmt.Sprintf("seq-%03d", i)
		want = append(want, "msg:"+content)
		if r, err := apiTryHTTP(c, "POST", base+"/watcher/message", `{"content":"`+content+`"}`); err != nil || r.code != http.StatusOK {
			t.Fatalf("POST %s: %v %d %s", content, err, r.code, r.raw)
		}
	}
	close(stopLooking)
	lookers.Wait()
	apiWaitFor(t, "every message to run", func() bool { return len(runs.list()) >= before+n })
	if got := runs.list()[before:]; !slices.Equal(got, want) {
		t.Errorf("runs while looking = %q\nwant %q", got, want)
	}

	// Stop closes the listener.
	apiStop(t, w)
	if got := w.APIAddr(); got != "" {
		t.Errorf("APIAddr after Stop = %q, want empty", got)
	}
	apiDialFails(t, addr)
	if _, err := apiTryHTTP(c, "GET", base+"/watcher/ready", ""); err == nil {
		t.Errorf("GET after Stop succeeded; the server should be gone")
	}

	// A restarted watcher serves again, on a new listener.
	apiStart(t, w)
	addr2 := w.APIAddr()
	if !strings.HasPrefix(addr2, "127.0.0.1:") || strings.HasSuffix(addr2, ":0") {
		t.Fatalf("APIAddr after restart = %q", addr2)
	}
	if r := apiHTTP(t, c, "GET", "http://"+addr2+"/watcher/ready", ""); r.code != http.StatusOK || r.body["ready"] != true {
		t.Errorf("ready after restart: %d %s", r.code, r.raw)
	}
	apiStop(t, w)
	apiDialFails(t, addr2)
}

// apiDialFails fails the test if something still accepts connections at addr.
func apiDialFails(t testing.TB, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("dial %s after Stop succeeded; the listener is still open", addr)
	}
}

func TestAPIListenFailureThenStartOnAFreeAddress(t *testing.T) {
	leaktest.Check(t)
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	addr := blocker.Addr().String()

	var runs apiRuns
	w := apiNew(t, Config{APIAddr: addr}, func(c *Context) error {
		runs.add(apiTriggerText(c))
		return nil
	})
	err = w.Start()
	if err == nil {
		apiStop(t, w)
		t.Fatalf("Start on %s, which is in use, succeeded", addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Start error = %v, want EADDRINUSE naming %s", err, addr)
	}
	// Nothing started: no session, no run, no listener.
	if w.State() != StateNotRun || w.APIAddr() != "" || w.Done() != nil {
		t.Errorf("after a failed Start: state %v, APIAddr %q, Done %v; want NotRun, empty, nil", w.State(), w.APIAddr(), w.Done())
	}
	h := w.Handler()
	if r := apiServe(t, h, http.MethodGet, "/watcher/ready", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("ready after a failed Start = %d, want 503", r.code)
	}
	apiErrorBody(t, "message after a failed Start", apiServe(t, h, http.MethodPost, "/watcher/message", `{"content":"x"}`), http.StatusConflict, "not running")
	if err := w.Send(context.Background(), "x"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Send after a failed Start = %v, want ErrNotRunning", err)
	}

	// Once the address is free the same watcher starts on it.
	if err := blocker.Close(); err != nil {
		t.Fatal(err)
	}
	apiStart(t, w)
	if got := w.APIAddr(); got != addr {
		t.Errorf("APIAddr = %q, want %q", got, addr)
	}
	apiWaitFor(t, "the start run", func() bool { return len(runs.list()) == 1 })
	c := apiClient(t)
	if r := apiHTTP(t, c, "GET", "http://"+addr+"/watcher/status", ""); r.code != http.StatusOK || r.body["isRunning"] != true {
		t.Errorf("status on the freed address: %d %s", r.code, r.raw)
	}
	apiStop(t, w)
	apiDialFails(t, addr)
	if got := runs.list(); !slices.Equal(got, []string{"start"}) {
		t.Errorf("runs = %q, want one start run (none for the failed Start)", got)
	}
}

func TestAPIHandlerMountedElsewhere(t *testing.T) {
	leaktest.Check(t)
	var runs apiRuns
	w := apiNew(t, Config{DisableAPIServer: true, APIAddr: "127.0.0.1:0"}, func(c *Context) error {
		runs.add(apiTriggerText(c))
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("/ops/", http.StripPrefix("/ops", w.Handler()))
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	defer srv.Close()
	c := apiClient(t)
	base := srv.URL + "/ops"

	if r := apiHTTP(t, c, "GET", base+"/watcher/ready", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("ready before Start = %d, want 503", r.code)
	}
	apiStart(t, w)
	if got := w.APIAddr(); got != "" {
		t.Errorf("APIAddr with DisableAPIServer = %q, want empty (no listener)", got)
	}
	apiWaitFor(t, "the start run", func() bool { return len(runs.list()) == 1 })
	for _, p := range apiAllRoutes {
		if r := apiHTTP(t, c, "GET", base+p, ""); r.code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, r.code, r.raw)
		}
	}
	if r := apiHTTP(t, c, "POST", base+"/watcher/message", `{"content":"mounted"}`); r.code != http.StatusOK {
		t.Fatalf("POST message: %d %s", r.code, r.raw)
	}
	apiWaitFor(t, "the message run", func() bool { return len(runs.list()) == 2 })
	if got := runs.list(); got[1] != "msg:mounted" {
		t.Errorf("runs = %q", got)
	}
	conf := apiAs[map[string]any](t, apiHTTP(t, c, "GET", base+"/watcher/config", "").body, "config")
	if _, ok := conf["listenAddr"]; ok {
		t.Errorf("config.listenAddr = %v with DisableAPIServer, want absent", conf["listenAddr"])
	}

	// The same handler answers in a ResponseRecorder, without any server.
	if r := apiServe(t, w.Handler(), http.MethodGet, "/watcher/status", ""); r.code != http.StatusOK || r.body["isRunning"] != true {
		t.Errorf("status through a recorder: %d %s", r.code, r.raw)
	}

	apiStop(t, w)
	// The host's server outlives the watcher; the handler reports the stop.
	r := apiHTTP(t, c, "GET", base+"/watcher/ready", "")
	if r.code != http.StatusServiceUnavailable || r.body["state"] != "Stopped" {
		t.Errorf("ready after Stop: %d %s, want 503 Stopped", r.code, r.raw)
	}
	apiErrorBody(t, "message after Stop", apiHTTP(t, c, "POST", base+"/watcher/message", `{"content":"late"}`), http.StatusConflict, "not running")
	srv.Close()
}
