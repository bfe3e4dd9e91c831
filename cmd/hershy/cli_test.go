package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/testenv"
)

// fakeHost answers the API routes with canned data; it tests the CLI's
// requests and output, not the Host.
type fakeHost struct {
	t        *testing.T
	mu       sync.Mutex
	state    string // of program p1
	failWith string // deploy ends in Error with this message
	seq      int    // grows with every action, as the Host's
	streams  int    // GET /events requests
	lag      bool   // the next event stream opens with a stale Ready
	lagged   bool
	created  map[string]any // last create body
	auth     []string
	hung     bool // p1's WatcherAPI does not answer the Host's checks
}

func (f *fakeHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	js := func(code int, v string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprint(w, v)
	}
	created := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	prog := func() string {
		errMsg := ""
		if f.state == "Error" {
			errMsg = f.failWith
		}
		answer := ""
		if f.hung && f.state == "Ready" {
			answer = `,"watcher_api":{"answering":false,"since":"2026-11-30T12:00:00Z","problem":"WatcherAPI answered 503 Service Unavailable"}`
		}
		return fmt.Sprintf(`{"program_id":"p1","build_id":"b1","user_id":"alice","state":%q,"runtime":"runsc","restart_count":2,"created_at":%q,"proxy_url":"http://h/programs/p1/proxy","error_msg":%q,"restart_policy":"on-failure","last_exit_code":3,"seq":%d%s}`, f.state, created, errMsg, f.seq, answer)
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /programs":
		js(200, `{"programs":[`+prog()+`,{"program_id":"p2","user_id":"bob","state":"Stopped","restart_count":0}],"count":2,"total":2}`)
	case "POST /programs":
		_ = json.NewDecoder(r.Body).Decode(&f.created)
		f.state = "Created"
		js(201, `{"program_id":"p1","build_id":"b1","state":"Created"}`)
	case "PUT /programs/p1/source":
		_ = json.NewDecoder(r.Body).Decode(&f.created)
		js(200, `{"program_id":"p1","build_id":"b2","state":"Ready"}`)
	case "GET /programs/p1":
		js(200, prog())
	case "GET /events":
		// The snapshot, then, for a start, the build and its end: Building,
		// then Ready (or Error) one action later.
		f.streams++
		if r.URL.Query().Get("program_id") != "p1" {
			js(404, `{"error":"Not Found","code":404,"message":"program not found"}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func() { fmt.Fprintf(w, "event: program\ndata: %s\n\n", prog()) }
		if f.lag && !f.lagged {
			f.lagged = true
			state, seq := f.state, f.seq
			f.state, f.seq = "Ready", f.seq-1 // the state before the restart
			ev()
			f.state, f.seq = state, seq
		}
		ev()
		fmt.Fprint(w, ": ping\n\nevent: synced\ndata: {}\n\n")
		if f.state == "Building" {
			ev()
			f.seq++
			f.state = "Ready"
			if f.failWith != "" {
				f.state = "Error"
			}
			ev()
		}
		if f.state == "Stopping" {
			f.state = "Stopped"
			ev()
		}
	case "POST /programs/p1/start", "POST /programs/p1/restart":
		f.state = "Building"
		f.seq++
		js(200, fmt.Sprintf(`{"program_id":"p1","state":"Building","message":"start requested","seq":%d}`, f.seq))
	case "POST /programs/p1/stop":
		f.state = "Stopping"
		f.seq++
		js(200, fmt.Sprintf(`{"program_id":"p1","state":"Stopping","message":"stop requested","seq":%d}`, f.seq))
	case "DELETE /programs/p1":
		js(200, `{"program_id":"p1","status":"deleted"}`)
	case "GET /programs/p1/build-log":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "#1 building go source\n#2 DONE\n")
	case "GET /programs/p1/stats":
		if r.URL.Query().Get("since") != "2h" {
			js(400, `{"error":"Bad Request","code":400,"message":"since wanted"}`)
			return
		}
		js(200, `{"program_id":"p1","resolution":"fine","step_seconds":10,"samples":[`+
			`{"at":"2026-11-30T10:00:00Z","cpu_percent":3.25,"memory_bytes":12582912,"memory_limit_bytes":268435456,"pids":9,"state_bytes_used":1048576,"state_bytes_limit":268435456,"restarts":0},`+
			`{"at":"2026-11-30T10:00:10Z","cpu_percent":97.5,"memory_bytes":25165824,"memory_limit_bytes":268435456,"pids":11,"state_bytes_used":2097152,"state_bytes_limit":268435456,"restarts":1}]}`)
	case "GET /programs/p1/logs":
		if r.URL.Query().Get("follow") == "1" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: line one\n\ndata: line two\n\n")
			return
		}
		js(200, `{"program_id":"p1","container_id":"c1","logs":"l1\nl2\nl3","timestamp":"t"}`)
	case "GET /programs/p1/proxy/watcher/status":
		js(200, `{"state":"Ready","isRunning":true,"uptime":"1h2m","lastUpdate":"2026-01-01T00:00:00Z"}`)
	case "GET /programs/p1/proxy/watcher/signals":
		js(200, `{"varSigCount":1,"userSigCount":2,"watcherSigCount":0,"totalPending":3,"recentSignals":[{"type":"user","content":"hi","createdAt":"t1"}]}`)
	case "GET /programs/p1/proxy/watcher/varState":
		js(200, `{"variables":{"price":42.5,"name":"btc"},"count":2}`)
	case "POST /programs/p1/proxy/watcher/message":
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["content"] != "buy now" {
			js(400, `{"error":"Bad Request","code":400,"message":"empty content"}`)
			return
		}
		js(200, `{"status":"message sent"}`)
	case "POST /tokens":
		js(201, `{"token":"hsy_secret","id":"t9","user_id":"carol"}`)
	case "GET /tokens":
		js(200, `{"tokens":[{"id":"t1","user_id":"admin","admin":true},{"id":"t9","user_id":"carol"}]}`)
	case "DELETE /tokens/t9":
		js(200, `{}`)
	default:
		js(404, `{"error":"Not Found","code":404,"message":"no program `+strings.TrimPrefix(r.URL.Path, "/programs/")+`"}`)
	}
}

func setup(t *testing.T) (*fakeHost, *httptest.Server) {
	t.Helper()
	f := &fakeHost{t: t, state: "Ready"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("HERSHY_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("HERSHY_URL", srv.URL)
	t.Setenv("HERSHY_TOKEN", "envtok")
	return f, srv
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("hershy %v: exit %d\nstderr: %s", args, code, errOut)
	}
	return out
}

func TestPsTableAndJSON(t *testing.T) {
	setup(t)
	out := mustRun(t, "ps")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("ps:\n%s", out)
	}
	for _, col := range []string{"ID", "USER", "STATE", "RUNTIME", "RESTARTS", "AGE"} {
		if !strings.Contains(lines[0], col) {
			t.Fatalf("header %q lacks %s", lines[0], col)
		}
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "p1 alice Ready runsc 2 3h" {
		t.Fatalf("row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") != "p2 bob Stopped - 0 -" {
		t.Fatalf("row %q", lines[2])
	}
	var list struct {
		Programs []map[string]any `json:"programs"`
		Total    int              `json:"total"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "ps", "-o", "json")), &list); err != nil || list.Total != 2 || list.Programs[0]["program_id"] != "p1" {
		t.Fatalf("ps -o json: %+v %v", list, err)
	}
}

func TestInspect(t *testing.T) {
	f, _ := setup(t)
	out := mustRun(t, "inspect", "p1")
	for _, want := range []string{"ID:             p1", "State:          Ready", "Restart policy: on-failure", "Last exit code: 3", "Proxy URL:      http://h/programs/p1/proxy"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect lacks %q:\n%s", want, out)
		}
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", "p1", "-o", "json")), &p); err != nil || p["state"] != "Ready" {
		t.Fatalf("inspect json: %v %v", p, err)
	}
	if strings.Contains(out, "WatcherAPI:") {
		t.Fatalf("a WatcherAPI line with no check reported:\n%s", out)
	}
	f.mu.Lock()
	f.hung = true
	f.mu.Unlock()
	if out := mustRun(t, "inspect", "p1"); !strings.Contains(out, "WatcherAPI:     NOT answering since 2026-11-30T12:00:00Z: WatcherAPI answered 503") {
		t.Fatalf("inspect of a program that stopped answering:\n%s", out)
	}
}

func TestActionsAndErrors(t *testing.T) {
	f, _ := setup(t)
	if out := mustRun(t, "stop", "--wait=false", "p1"); out != "p1: stop requested (state Stopping)\n" {
		t.Fatalf("stop --wait=false: %q", out)
	}
	// By default it waits until the program is Stopped.
	if out := mustRun(t, "stop", "p1"); out != "p1: stop requested (state Stopping)\np1: Stopped\n" {
		t.Fatalf("stop: %q", out)
	}
	if out := mustRun(t, "rm", "p1"); out != "p1 deleted\n" {
		t.Fatalf("rm: %q", out)
	}
	_, errOut, code := runCLI(t, "start", "nope")
	if code != 1 || !strings.Contains(errOut, "start nope: Not Found (404): no program nope/start") {
		t.Fatalf("start nope: %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "start")
	if code != 2 || !strings.Contains(errOut, "usage") {
		t.Fatalf("start without id: %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "ps", "-o", "yaml")
	if code != 2 || !strings.Contains(errOut, "unknown output format") {
		t.Fatalf("-o yaml: %d %q", code, errOut)
	}
	_, _, code = runCLI(t, "ps", "--bogus")
	if code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
	if f.auth[0] != "Bearer envtok" {
		t.Fatalf("auth header %q", f.auth[0])
	}
}

func TestUnreachableHost(t *testing.T) {
	setup(t)
	_, errOut, code := runCLI(t, "ps", "--url", "http://127.0.0.1:1")
	if code != 1 || !strings.HasPrefix(errOut, "hershy: ") {
		t.Fatalf("unreachable: %d %q", code, errOut)
	}
}

func TestConfigResolution(t *testing.T) {
	f, srv := setup(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"url":"`+srv.URL+`","token":"filetok"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HERSHY_CONFIG", cfg)
	t.Setenv("HERSHY_URL", "")
	t.Setenv("HERSHY_TOKEN", "")
	mustRun(t, "ps")
	t.Setenv("HERSHY_TOKEN", "envtok")
	mustRun(t, "ps")
	mustRun(t, "ps", "--token", "flagtok")
	want := []string{"Bearer filetok", "Bearer envtok", "Bearer flagtok"}
	if strings.Join(f.auth, ",") != strings.Join(want, ",") {
		t.Fatalf("auth = %v", f.auth)
	}
}

func TestLogs(t *testing.T) {
	setup(t)
	if out := mustRun(t, "logs", "--tail", "3", "p1"); out != "l1\nl2\nl3\n" {
		t.Fatalf("logs: %q", out)
	}
	if out := mustRun(t, "logs", "-f", "p1"); out != "line one\nline two\n" {
		t.Fatalf("logs -f: %q", out)
	}
	if out := mustRun(t, "logs", "-f", "-o", "json", "p1"); out != "{\"line\":\"line one\"}\n{\"line\":\"line two\"}\n" {
		t.Fatalf("logs -f -o json: %q", out)
	}
}

func TestStats(t *testing.T) {
	setup(t)
	out := mustRun(t, "stats", "--since", "2h", "p1")
	for _, want := range []string{"CPU %", "97.5", "24.0 MiB / 256.0 MiB", "2.0 MiB / 256.0 MiB"} {
		if !strings.Contains(out, want) {
			t.Fatalf("stats lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Count(out, "\n"); lines != 3 {
		t.Fatalf("stats: %d lines, want a header and two samples:\n%s", lines, out)
	}
	if out := mustRun(t, "stats", "--since", "2h", "--last", "1", "-o", "json", "p1"); !strings.Contains(out, `"cpu_percent": 97.5`) || strings.Contains(out, "3.25") {
		t.Fatalf("stats --last 1 -o json: %s", out)
	}
}

func TestSendStatusWatch(t *testing.T) {
	setup(t)
	if out := mustRun(t, "send", "p1", "buy now"); out != "p1: message sent\n" {
		t.Fatalf("send: %q", out)
	}
	_, errOut, code := runCLI(t, "send", "p1", "")
	if code != 1 || !strings.Contains(errOut, "Bad Request (400): empty content") {
		t.Fatalf("send empty: %d %q", code, errOut)
	}
	out := mustRun(t, "status", "p1")
	for _, want := range []string{"Program:      p1", "State:        Ready", "Running:      true", "Uptime:       1h2m", "Pending:      3 (var 1, user 2, watcher 0)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, "watch", "p1", "--count", "2", "--interval", "10ms")
	for _, want := range []string{"p1   state Ready   restarts 2", "name                     btc", "price                    42.500", "pending 3 (var 1, user 2, watcher 0)", "user     t1", "  l3\n", "\033[H\033[2J"} {
		if !strings.Contains(out, want) {
			t.Fatalf("watch lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "VARIABLES") != 2 {
		t.Fatalf("watch frames:\n%s", out)
	}
	out = mustRun(t, "watch", "p1", "--count", "1", "-o", "json")
	var frame map[string]any
	if err := json.Unmarshal([]byte(out), &frame); err != nil || frame["variables"] == nil {
		t.Fatalf("watch json %q: %v", out, err)
	}
}

func TestTokens(t *testing.T) {
	setup(t)
	if out := mustRun(t, "token", "create", "carol"); !strings.Contains(out, "hsy_secret") || !strings.Contains(out, "shown only once") {
		t.Fatalf("token create: %q", out)
	}
	out := mustRun(t, "token", "list")
	if !strings.Contains(out, "t9") || !strings.Contains(out, "carol") || !strings.Contains(out, "admin") {
		t.Fatalf("token list: %q", out)
	}
	if out := mustRun(t, "token", "revoke", "t9"); out != "token t9 revoked\n" {
		t.Fatalf("token revoke: %q", out)
	}
}

func TestDeployCreateAndUpdate(t *testing.T) {
	f, _ := setup(t)
	dir := testenv.WriteFiles(t, map[string]string{"go.mod": "module x\n", "main.go": "package main\n", "Dockerfile": "FROM golang\n", ".hershignore": "*.md\n", "README.md": "x"})
	out, errOut, code := runCLI(t, "deploy", dir, "-e", "A=1", "--network")
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Created program p1", "#1 building go source", "[state] Ready"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("deploy stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, want := range []string{"Program:   p1", "State:     Ready", "Status:    http://h/programs/p1/proxy/watcher/status"} {
		if !strings.Contains(out, want) {
			t.Fatalf("deploy stdout lacks %q:\n%s", want, out)
		}
	}
	files := f.created["src_files"].(map[string]any)
	if len(files) != 3 || files["README.md"] != nil || f.created["dockerfile"] != "FROM golang\n" || f.created["network"] != true {
		t.Fatalf("create body: %v", f.created)
	}
	if env := f.created["env"].(map[string]any); env["A"] != "1" {
		t.Fatalf("env: %v", env)
	}

	// Update a running program: PUT source then restart; a stale Ready
	// right after the restart must not end the wait.
	f.state, f.streams, f.lag = "Ready", 0, true
	out, errOut, code = runCLI(t, "deploy", dir, "--program", "p1", "-o", "json")
	if code != 0 || !strings.Contains(errOut, "Updated source of p1") {
		t.Fatalf("deploy update: %d %s", code, errOut)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(out), &p); err != nil || p["state"] != "Ready" {
		t.Fatalf("deploy -o json: %q %v", out, err)
	}
	if !f.lagged || f.streams != 1 || !strings.Contains(errOut, "[state] Building\n[state] Ready") {
		t.Fatalf("deploy ended on the stale Ready (%d streams):\n%s", f.streams, errOut)
	}
}

func TestDeployError(t *testing.T) {
	f, _ := setup(t)
	f.failWith = "build failed: main.go:3: undefined: foo"
	dir := testenv.WriteFiles(t, map[string]string{"go.mod": "module x\n", "main.go": "package main\n"})
	out, errOut, code := runCLI(t, "deploy", dir)
	if code != 1 || out != "" || !strings.Contains(errOut, "hershy: deploy: p1 failed: build failed: main.go:3: undefined: foo") {
		t.Fatalf("deploy error: %d stdout %q stderr %q", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "deploy", filepath.Join(dir, "missing"))
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("deploy missing dir: %d %q", code, errOut)
	}
}

func TestServeFlagsAndCompletion(t *testing.T) {
	setup(t)
	_, errOut, code := runCLI(t, "serve", "--runtime", "kata")
	if code != 2 || !strings.Contains(errOut, "want runsc or runc") {
		t.Fatalf("serve --runtime kata: %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "serve", "--max-follows", "0")
	if code != 2 || !strings.Contains(errOut, "--max-follows") {
		t.Fatalf("serve --max-follows 0: %d %q", code, errOut)
	}
	for _, bad := range [][]string{{"--proxy-in-flight", "0"}, {"--proxy-header-timeout", "0s"}} {
		_, errOut, code = runCLI(t, append([]string{"serve"}, bad...)...)
		if code != 2 || !strings.Contains(errOut, "--proxy-in-flight must be at least 1") {
			t.Fatalf("serve %v: %d %q", bad, code, errOut)
		}
	}
	if out := mustRun(t, "completion", "bash"); !strings.Contains(out, "hershy") {
		t.Fatal("no bash completion")
	}
}
