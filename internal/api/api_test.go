package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/host/hosttest"
)

const goModule = `{"src_files":{"go.mod":"module example.com/x\n\ngo 1.25\n","main.go":"package main\n\nfunc main() {}\n"}}`

func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	wild := regexp.MustCompile(`\{(\w+)\.\.\.\}`)
	registered := map[string]bool{}
	for _, rt := range routes {
		path := wild.ReplaceAllString(rt.pattern, "{$1}")
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("route %s %s is not documented", rt.method, path)
			continue
		}
		if rt.method == "" {
			for m := range ops {
				registered[strings.ToUpper(m)+" "+path] = true
			}
			continue
		}
		if _, ok := ops[strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s %s is not documented", rt.method, path)
		}
		registered[rt.method+" "+path] = true
	}
	for path, ops := range doc.Paths {
		for m := range ops {
			if !registered[strings.ToUpper(m)+" "+path] {
				t.Errorf("documented %s %s is not registered", m, path)
			}
		}
	}
}

func TestEnsureAdminToken(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	tok, path, created, err := e.h.Tokens().EnsureAdmin(context.Background(), dir)
	if err != nil || !created || tok == "" {
		t.Fatal(created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || path != filepath.Join(dir, "admin.token") {
		t.Fatalf("admin.token: %v %v", fi.Mode(), err)
	}
	tok2, _, created, err := e.h.Tokens().EnsureAdmin(context.Background(), dir)
	if err != nil || created || tok2 != tok {
		t.Fatalf("second start: %v %v", created, err)
	}
}

// TestContract covers every route with every error code it can give, and
// the ownership matrix (alice owns the program; bob, admin, no token).
func TestContract(t *testing.T) {
	e := newEnv(t)
	var created map[string]any
	e.do("POST", "/programs", e.tokA, goModule, 201, &created)
	id := created["program_id"].(string)
	if created["state"] != "Created" || !strings.HasSuffix(created["proxy_url"].(string), "/programs/"+id+"/proxy") ||
		!strings.HasPrefix(id, "alice-") {
		t.Fatalf("create: %v", created)
	}
	var other map[string]any // a program of alice to delete
	e.do("POST", "/programs", e.tokA, `{"user_id":"alice","src_files":{"go.mod":"module a\n","main.go":"package main\nfunc main(){}\n"}}`, 201, &other)
	delID := other["program_id"].(string)

	P := "/programs/" + id
	type rq struct {
		method, path, body string
		owner              int // status for the owner (alice) and admin; 0: skip
		adminOnly          bool
	}
	all := []rq{
		{"GET", "/metrics", "", 200, true},
		{"POST", "/programs", goModule, 201, false},
		{"GET", "/programs", "", 200, false},
		{"GET", P, "", 200, false},
		{"POST", P + "/start", "", 0, false},
		{"POST", P + "/stop", "", 200, false},
		{"POST", P + "/restart", "", 0, false},
		{"PUT", P + "/source", goModule, 200, false},
		{"GET", P + "/source", "", 200, false},
		{"GET", P + "/history", "", 200, false},
		{"GET", P + "/stats?since=1h", "", 200, false},
		{"PUT", P + "/restart-policy", `{"restart_policy":"never"}`, 200, false},
		{"GET", P + "/build-log", "", 0, false},
		{"GET", P + "/logs", "", 200, false},
		{"GET", P + "/secrets", "", 200, false},
		{"PUT", P + "/secrets/API_KEY", `{"value":"s3cr3t"}`, 200, false},
		{"DELETE", P + "/secrets/API_KEY", "", 200, false},
		{"GET", P + "/proxy/watcher/status", "", 503, false},
		{"POST", P + "/proxy/watcher/message", `{"content":"x"}`, 503, false},
		{"DELETE", "/programs/" + delID, "", 200, false},
		{"POST", "/tokens", `{"user_id":"carol"}`, 201, true},
		{"GET", "/tokens", "", 200, true},
		{"DELETE", "/tokens/" + e.tokBID, "", 200, true},
	}
	for _, c := range all {
		what := c.method + " " + c.path
		// No token, a bad token: 401.
		resp, b := e.req(c.method, c.path, "", c.body)
		checkError(t, what+" without token", resp, b, 401)
		resp, b = e.req(c.method, c.path, "hsy_nope", c.body)
		checkError(t, what+" with a bad token", resp, b, 401)
		if c.adminOnly {
			resp, b = e.req(c.method, c.path, e.tokA, c.body)
			checkError(t, what+" as a user", resp, b, 403)
			continue
		}
		// Bob: another user's program does not exist.
		if strings.HasPrefix(c.path, "/programs/") {
			resp, b = e.req(c.method, c.path, e.tokB, c.body)
			checkError(t, what+" as bob", resp, b, 404)
		}
	}
	// The owner and the admin.
	for i, c := range all {
		if c.owner == 0 || c.adminOnly || c.path == "/programs/"+delID {
			continue
		}
		tok := e.tokA
		if i%2 == 1 {
			tok = e.admin
		}
		resp, b := e.req(c.method, c.path, tok, c.body)
		if resp.StatusCode != c.owner {
			t.Errorf("%s %s as owner/admin: %d, want %d: %s", c.method, c.path, resp.StatusCode, c.owner, b)
		}
		if c.owner >= 400 {
			checkError(t, c.method+" "+c.path, resp, b, c.owner)
		}
	}
	e.do("DELETE", "/programs/"+delID, e.tokA, "", 200, nil)
	resp, b := e.req("GET", "/programs/"+delID, e.tokA, "")
	checkError(t, "deleted program", resp, b, 404)
	for _, c := range all {
		if c.adminOnly {
			tok := e.admin
			resp, b := e.req(c.method, c.path, tok, c.body)
			if resp.StatusCode != c.owner {
				t.Errorf("%s %s as admin: %d: %s", c.method, c.path, resp.StatusCode, b)
			}
		}
	}
	// Bob's token was revoked above.
	resp, b = e.req("GET", "/programs", e.tokB, "")
	checkError(t, "revoked token", resp, b, 401)

	// Public routes.
	e.do("GET", "/healthz", "", "", 200, nil)
	var v map[string]any
	e.do("GET", "/version", "", "", 200, &v)
	if v["version"] != "test" {
		t.Errorf("version: %v", v)
	}
	e.do("GET", "/openapi.json", "", "", 200, &v)

	// 400s.
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/programs", `{"src_files":`},
		{"POST", "/programs", `{"src_files":{"a":"b"},"bogus":1}`},
		{"POST", "/programs", `{"src_files":{"main.go":"package main"}}`},
		{"POST", "/programs", `{"src_files":{"go.mod":"module a\n"},"memory_bytes":5}`},
		{"POST", "/programs", `{} {}`},
		{"PUT", P + "/restart-policy", `{"restart_policy":"sometimes"}`},
		{"PUT", P + "/source", `{"src_files":{"go.mod":"module a\n"},"memory_bytes":67108864}`},
		{"PUT", P + "/source", `{"user_id":"bob","src_files":{"go.mod":"module a\n"}}`},
		{"PUT", P + "/source", `{"src_files":{"go.mod":"module a\n"},"restart_policy":"sometimes"}`},
		{"PUT", P + "/secrets/bad%20name", `{"value":"x"}`},
		{"PUT", P + "/secrets/X", `{}`},
		{"GET", "/programs?limit=-1", ""},
		{"GET", "/programs?state=Sleeping", ""},
		{"GET", P + "/logs?tail=x", ""},
		{"GET", P + "/logs?since=yesterday", ""},
	} {
		resp, b := e.req(c.method, c.path, e.tokA, c.body)
		checkError(t, c.method+" "+c.path+" "+c.body, resp, b, 400)
	}
	resp, b = e.req("POST", "/tokens", e.admin, `{"user_id":""}`)
	checkError(t, "token without user", resp, b, 400)
	resp, b = e.req("POST", "/tokens", e.admin, `{"user_id":"admin"}`)
	checkError(t, "token for the reserved admin user", resp, b, 400)
	// 403: a user naming another user.
	resp, b = e.req("POST", "/programs", e.tokA, `{"user_id":"bob","src_files":{"go.mod":"module a\n"}}`)
	checkError(t, "create for another user", resp, b, 403)
	// 404s.
	for _, p := range []string{"/programs/nope", "/programs/nope/source", "/nowhere", P + "/proxy/etc/passwd", P + "/proxy/watcher/../../x"} {
		resp, b := e.req("GET", p, e.tokA, "")
		checkError(t, "GET "+p, resp, b, 404)
	}
	resp, b = e.req("DELETE", P+"/secrets/NOPE", e.tokA, "")
	checkError(t, "missing secret", resp, b, 404)
	resp, b = e.req("DELETE", "/tokens/nope", e.admin, "")
	checkError(t, "missing token", resp, b, 404)
	// 405 is JSON too.
	resp, b = e.req("PATCH", P, e.tokA, `{}`)
	checkError(t, "PATCH", resp, b, 405)
	// 413.
	big := `{"user_id":"` + strings.Repeat("x", 70<<10) + `"}`
	resp, b = e.req("POST", "/tokens", e.admin, big)
	checkError(t, "big token body", resp, b, 413)
	big = `{"src_files":{"a":"` + strings.Repeat("x", 33<<20) + `"}}`
	resp, b = e.req("POST", "/programs", e.tokA, big)
	checkError(t, "big source", resp, b, 413)
	// 415.
	resp, b = e.req("POST", "/programs", e.tokA, goModule, "Content-Type", "text/plain")
	checkError(t, "text/plain create", resp, b, 415)
	resp, b = e.req("PUT", P+"/secrets/X", e.tokA, `{"value":"x"}`, "Content-Type", "")
	checkError(t, "secret without content type", resp, b, 415)
	resp, b = e.req("POST", P+"/stop", e.tokA, `{}`, "Content-Type", "text/plain")
	checkError(t, "stop with text/plain", resp, b, 415)

	// Listing: sorted, paginated, filtered; alice sees only hers.
	var list struct {
		Programs []programView `json:"programs"`
		Count    int           `json:"count"`
		Total    int           `json:"total"`
	}
	e.do("GET", "/programs?limit=1", e.tokA, "", 200, &list)
	if list.Count != 1 || list.Total != 1 || list.Programs[0].ProgramID != id {
		t.Errorf("list limit=1: %+v", list)
	}
	e.do("GET", "/programs?user_id=alice&state=Stopped&offset=0", e.admin, "", 200, &list)
	for _, p := range list.Programs {
		if p.UserID != "alice" || p.State != "Stopped" {
			t.Errorf("filtered list: %+v", p)
		}
	}
	e.do("GET", "/programs?user_id=alice", e.tokB, "", 401, nil)

	// Secrets: files 0600 in a 0700 directory owned by the program user,
	// never echoed.
	e.do("PUT", P+"/secrets/API_KEY", e.tokA, `{"value":"s3cr3t-value"}`, 200, nil)
	resp, b = e.req("GET", P+"/secrets", e.tokA, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "API_KEY") || strings.Contains(string(b), "s3cr3t") {
		t.Errorf("secret list: %s", b)
	}
	dir := filepath.Join(e.dir, "programs", id, "secrets")
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("secrets dir: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "API_KEY")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v %v", fi, err)
	}
	for _, p := range []string{P, P + "/source", P + "/history"} {
		_, b := e.req("GET", p, e.tokA, "")
		if strings.Contains(string(b), "s3cr3t") {
			t.Errorf("%s leaks the secret", p)
		}
	}
}

// TestCurlWorkflow is the seed report's workflow with a token header:
// create, start, wait Ready, status and message through the proxy,
// source, logs, stop.
func TestCurlWorkflow(t *testing.T) {
	e := newEnv(t)
	counter := hosttest.CounterSource(0)
	body, _ := json.Marshal(map[string]any{"user_id": "alice", "src_files": counter})
	var created map[string]any
	e.do("POST", "/programs", e.tokA, string(body), 201, &created)
	id := created["program_id"].(string)
	P := "/programs/" + id
	e.do("PUT", P+"/secrets/API_KEY", e.tokA, `{"value":"k"}`, 200, nil)
	// curl -X POST without a body or content type.
	var st map[string]any
	e.do("POST", P+"/start", e.tokA, "", 200, &st)
	if st["program_id"] != id {
		t.Fatalf("start: %v", st)
	}
	// Follow the build log while building: it ends with the build.
	for i := 0; ; i++ {
		resp, b := e.req("GET", P+"/build-log?follow=1", e.tokA, "")
		if resp.StatusCode == 200 {
			if len(b) == 0 {
				t.Errorf("build-log follow: empty")
			}
			break
		}
		if resp.StatusCode != 404 || i > 100 {
			t.Fatalf("build-log follow: %d %s", resp.StatusCode, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		var p programView
		e.do("GET", P, e.tokA, "", 200, &p)
		if p.State == "Ready" {
			break
		}
		if p.State == "Error" || time.Now().After(deadline) {
			_, log := e.req("GET", P+"/build-log", e.tokA, "")
			t.Fatalf("state %s (%s)\nbuild log:\n%s", p.State, p.ErrorMsg, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, b := e.req("POST", P+"/start", e.tokA, "")
	checkError(t, "start while Ready", resp, b, 409)

	// Secrets: a read-only mount at /run/secrets (the container spec the
	// Host asked the engine for; enginetest checks the engine's side),
	// files owned by the program's user.
	spec, ok := e.d.Spec(id)
	if !ok {
		t.Fatal("no container was created")
	}
	mounted := false
	for _, m := range spec.Mounts {
		if m.Target == "/run/secrets" {
			mounted = m.ReadOnly && m.Source == filepath.Join(e.dir, "programs", id, "secrets")
		}
	}
	if !mounted {
		t.Errorf("no read-only /run/secrets mount: %+v", spec.Mounts)
	}
	for _, kv := range spec.Env {
		if strings.Contains(kv, "API_KEY") {
			t.Errorf("secret in the environment: %s", kv)
		}
	}
	if fi, err := os.Stat(filepath.Join(e.dir, "programs", id, "secrets", "API_KEY")); err != nil {
		t.Error(err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && st.Uid != 65532 {
		t.Errorf("secret file owned by %d", st.Uid)
	}

	proxy := created["proxy_url"].(string)
	get := func(url string) (int, string) {
		r, _ := http.NewRequest("GET", url, nil)
		r.Header.Set("Authorization", "Bearer "+e.tokA)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			sb.WriteString(sc.Text())
		}
		return resp.StatusCode, sb.String()
	}
	if code, s := get(proxy + "/watcher/status"); code != 200 || !strings.Contains(s, "{") {
		t.Fatalf("status through the proxy: %d %s", code, s)
	}
	r, _ := http.NewRequest("POST", proxy+"/watcher/message", strings.NewReader(`{"content":"hello"}`))
	r.Header.Set("Authorization", "Bearer "+e.tokA)
	r.Header.Set("Content-Type", "application/json")
	mresp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	mresp.Body.Close()
	if mresp.StatusCode != 200 {
		t.Fatalf("message through the proxy: %s", mresp.Status)
	}
	resp, b = e.req("GET", P+"/proxy/watcher/status", e.tokB, "")
	checkError(t, "bob through the proxy", resp, b, 404)

	var src struct {
		ProgramID string            `json:"program_id"`
		Files     map[string]string `json:"files"`
	}
	e.do("GET", P+"/source", e.tokA, "", 200, &src)
	if src.Files["main.go"] != counter["main.go"] {
		t.Errorf("source: %v", src.ProgramID)
	}
	var logs map[string]any
	e.do("GET", P+"/logs?tail=10", e.tokA, "", 200, &logs)
	if logs["program_id"] != id {
		t.Errorf("logs: %v", logs)
	}
	// Follow: server-sent events until we go away.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	fr, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+P+"/logs?follow=1&tail=5", nil)
	fr.Header.Set("Authorization", "Bearer "+e.tokA)
	fresp, err := http.DefaultClient.Do(fr)
	if err != nil {
		t.Fatal(err)
	}
	if ct := fresp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("follow content type %q", ct)
	}
	sc := bufio.NewScanner(fresp.Body)
	gotEvent := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			gotEvent = true
			break
		}
	}
	cancel()
	fresp.Body.Close()
	if !gotEvent {
		t.Errorf("no log event while following")
	}
	for _, q := range []string{"", "?follow=1"} {
		resp, b := e.req("GET", P+"/build-log"+q, e.tokA, "")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || len(b) == 0 {
			t.Errorf("build-log%s: %d %q", q, resp.StatusCode, b)
		}
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	e.do("GET", P+"/logs?since="+since, e.tokA, "", 200, nil)
	var hist map[string]any
	e.do("GET", P+"/history", e.tokA, "", 200, &hist)
	if n := len(hist["transitions"].([]any)); n < 3 {
		t.Errorf("history: %d transitions", n)
	}
	e.do("POST", P+"/stop", e.tokA, "", 200, nil)
	deadline = time.Now().Add(30 * time.Second)
	for {
		var p programView
		e.do("GET", P, e.tokA, "", 200, &p)
		if p.State == "Stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not stopped: %s", p.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, b = e.req("GET", P+"/proxy/watcher/status", e.tokA, "")
	checkError(t, "proxy after stop", resp, b, 503)
	var m []byte
	_, m = e.req("GET", "/metrics", e.admin, "")
	for _, want := range []string{`hershy_programs{state="Stopped"} 1`, "hershy_proxy_requests_total", "hershy_builds"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	e.do("DELETE", P, e.tokA, "", 200, nil)
}
