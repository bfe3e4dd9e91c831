package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
)

// TestMetricsIsTheAdmins: /metrics shows every tenant's counts, so only
// the admin's token reads it.
func TestMetricsIsTheAdmins(t *testing.T) {
	e := newEnv(t)
	for _, tok := range []string{e.tokA, e.tokB} {
		resp, b := e.req("GET", "/metrics", tok, "")
		checkError(t, "metrics as a user", resp, b, 403)
		if strings.Contains(string(b), "hershy_programs") {
			t.Fatal("a user's 403 carries metrics")
		}
	}
	resp, b := e.req("GET", "/metrics", "", "")
	checkError(t, "metrics without a token", resp, b, 401)
	resp, b = e.req("GET", "/metrics", e.admin, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "hershy_programs{") {
		t.Fatalf("metrics as the admin: %d %.200s", resp.StatusCode, b)
	}
}

// TestPprofIsTheAdmins: the Host's profiles name every program, so only
// the admin's token reads them.
func TestPprofIsTheAdmins(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/heap?debug=1": "heap profile", "/debug/pprof/goroutine?debug=1": "goroutine profile"} {
		for _, tok := range []string{e.tokA, e.tokB} {
			resp, b := e.req("GET", path, tok, "")
			checkError(t, path+" as a user", resp, b, 403)
		}
		resp, b := e.req("GET", path, "", "")
		checkError(t, path+" without a token", resp, b, 401)
		resp, b = e.req("GET", path, e.admin, "")
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s as the admin: %d %.200s", path, resp.StatusCode, b)
		}
	}
}

// TestQuotaAndEnvErrors: each quota answers 403 in the error shape, with a
// message that says which limit; reserved environment names are a 400.
func TestQuotaAndEnvErrors(t *testing.T) {
	e := newEnv(t)
	body := func(user string, extra string) string {
		return `{"user_id":"` + user + `","src_files":{"go.mod":"module a\n","main.go":"package main\nfunc main(){}\n"}` + extra + `}`
	}
	// Programs per user (default 20): one of alice's is made by the admin
	// and counts for her.
	for i := 0; i < host.DefaultMaxPrograms-1; i++ {
		e.do("POST", "/programs", e.tokA, body("alice", ""), 201, nil)
	}
	e.do("POST", "/programs", e.admin, body("alice", ""), 201, nil)
	resp, b := e.req("POST", "/programs", e.tokA, body("alice", ""))
	checkError(t, "alice's 21st program", resp, b, 403)
	if !strings.Contains(string(b), "alice has 20 programs") {
		t.Errorf("the quota error does not say which limit: %s", b)
	}
	resp, b = e.req("POST", "/programs", e.admin, body("alice", ""))
	checkError(t, "the admin's 21st program for alice", resp, b, 403)
	e.do("POST", "/programs", e.tokB, body("bob", ""), 201, nil) // bob still can

	// Memory per program: at most the operator's limit (default 4 GiB),
	// whatever the machine.
	for _, mem := range []int64{64 << 30, 5 << 30} {
		resp, b = e.req("POST", "/programs", e.tokB, body("bob", fmt.Sprintf(`,"memory_bytes":%d`, mem)))
		checkError(t, fmt.Sprintf("memory_bytes %d", mem), resp, b, 403)
		if !strings.Contains(string(b), "per program") {
			t.Errorf("memory_bytes %d: %s", mem, b)
		}
	}
	e.do("POST", "/programs", e.tokB, body("bob", `,"memory_bytes":1073741824`), 201, nil)

	// Reserved environment names.
	for _, name := range []string{"HERSHY_X", "HERSHY_PROGRAM_ID", "HERSH_STATE_DIR", "PATH"} {
		resp, b = e.req("POST", "/programs", e.tokB, body("bob", `,"env":{"`+name+`":"x"}`))
		checkError(t, "env "+name, resp, b, 400)
		if !strings.Contains(string(b), "reserved") {
			t.Errorf("env %s: %s", name, b)
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitReady polls the program until it is Ready.
func (e *env) waitReady(id, tok string) programView {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var p programView
		e.do("GET", "/programs/"+id, tok, "", 200, &p)
		if p.State == "Ready" {
			return p
		}
		if (p.State == "Error" && p.NextRestartAt == nil) || time.Now().After(deadline) {
			e.t.Fatalf("program %s: %s (%s)", id, p.State, p.ErrorMsg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProxyPortAccess: a program's proxy port (--proxy-ports) asks for the
// owner's or the admin's token like /programs/{id}/proxy/: without one, or
// with another user's, the request is refused (401, 404) and never reaches
// the program (which logs every request it gets); the owner's and the
// admin's requests reach it without their credentials.
func TestProxyPortAccess(t *testing.T) {
	port := freePort(t)
	e := newEnvWith(t, Options{PortRange: fmt.Sprintf("%d-%d", port, port)})
	b, _ := json.Marshal(map[string]any{"src_files": hosttest.SeedSource()})
	var created map[string]any
	e.do("POST", "/programs", e.tokA, string(b), 201, &created)
	id := created["program_id"].(string)
	e.do("POST", "/programs/"+id+"/start", e.tokA, "", 200, nil)
	p := e.waitReady(id, e.tokA)
	for deadline := time.Now().Add(5 * time.Second); p.ProxyPort == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		e.do("GET", "/programs/"+id, e.tokA, "", 200, &p)
	}
	if p.ProxyPort != port {
		t.Fatalf("proxy port %d, want %d", p.ProxyPort, port)
	}

	send := func(method, path, tok string) (*http.Response, []byte) {
		t.Helper()
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"content":"hello"}`)
		}
		r, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), body)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		r.Header.Set("Cookie", "session=c00kie")
		if method == "POST" {
			r.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, out
	}
	// Refused: they must not reach the program.
	for _, c := range []struct {
		method, probe, tok string
		want               int
	}{
		{"GET", "none", "", 401},
		{"POST", "none-post", "", 401},
		{"GET", "bad", "hsy_not-a-token", 401},
		{"GET", "bob", e.tokB, 404},
		{"POST", "bob-post", e.tokB, 404},
	} {
		path := "/watcher/status?probe=" + c.probe
		if c.method == "POST" {
			path = "/watcher/message?probe=" + c.probe
		}
		resp, b := send(c.method, path, c.tok)
		checkError(t, c.method+" on the port as "+c.probe, resp, b, c.want)
	}
	resp, b := send("GET", "/programs?probe=elsewhere", e.tokA)
	checkError(t, "a non-WatcherAPI path on the port", resp, b, 404)
	// Allowed: the owner and the admin.
	for _, c := range []struct{ probe, tok string }{{"alice", e.tokA}, {"admin", e.admin}} {
		resp, b := send("GET", "/watcher/status?probe="+c.probe, c.tok)
		var st map[string]any
		if resp.StatusCode != 200 || json.Unmarshal(b, &st) != nil || st["isRunning"] != true {
			t.Fatalf("status through the port as %s: %d %s", c.probe, resp.StatusCode, b)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("Set-Cookie passed through")
		}
	}
	resp, b = send("POST", "/watcher/message?probe=alice-post", e.tokA)
	if resp.StatusCode != 200 {
		t.Fatalf("message through the port: %d %s", resp.StatusCode, b)
	}

	// What the program saw. Its log is written before it answers, so once
	// the last allowed request shows, every earlier one that got through
	// would show too.
	var seen []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var logs struct {
			Logs string `json:"logs"`
		}
		e.do("GET", "/programs/"+id+"/logs?tail=0", e.tokA, "", 200, &logs)
		seen = nil
		for _, l := range strings.Split(logs.Logs, "\n") {
			if strings.Contains(l, "probe=") {
				seen = append(seen, l)
			}
		}
		if strings.Contains(logs.Logs, "probe=alice-post") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := []string{"probe=alice ", "probe=admin ", "probe=alice-post "}
	if len(seen) != len(want) {
		t.Fatalf("the program saw %d proxied requests, want %d (the owner's and the admin's):\n%s", len(seen), len(want), strings.Join(seen, "\n"))
	}
	for i, l := range seen {
		if !strings.Contains(l, want[i]) || !strings.Contains(l, `authorization="" cookie=""`) {
			t.Errorf("request %d as the program saw it: %s", i, l)
		}
	}
}

// TestNoDataDirInErrors sends hostile programs whose failures the file
// system and the engine describe with absolute paths (a go.mod the go
// command rejects; an image whose /state is a file, so the engine cannot
// mount the program's state folder there: the fake engine fails as Docker
// does, naming the folder) and checks that no answer of the API,
// error_msg and history included, shows the Host's data directory. (The
// same against the real engine's own messages: enginetest's
// TestNoDataDirInEngineErrors.)
func TestNoDataDirInErrors(t *testing.T) {
	e := newEnv(t)
	dirs := []string{e.dir}
	if real, err := filepath.EvalSymlinks(e.dir); err == nil && real != e.dir {
		dirs = append(dirs, real)
	}
	var answers []string
	record := func(what string, b []byte) {
		answers = append(answers, what+": "+string(b))
	}
	call := func(method, path, tok, body string) []byte {
		t.Helper()
		resp, b := e.req(method, path, tok, body)
		record(fmt.Sprintf("%s %s (%d)", method, path, resp.StatusCode), b)
		return b
	}
	create := func(files map[string]string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"src_files": files, "restart_policy": "never"})
		var out map[string]any
		if err := json.Unmarshal(call("POST", "/programs", e.tokA, string(body)), &out); err != nil || out["program_id"] == nil {
			t.Fatalf("create: %v %v", out, err)
		}
		return out["program_id"].(string)
	}
	// A go.mod the go command refuses is a 400 at create now; a program
	// that does not compile fails in the build sandbox.
	call("POST", "/programs", e.tokA, `{"src_files":{"go.mod":"module x\n\ngo 1.25\n\nfrobnicate now\n","main.go":"package main\n"}}`)
	badMod := create(map[string]string{"go.mod": "module x\n\ngo 1.25\n", "main.go": "package main\n\nfunc main() { nope }\n"})
	stateFile := create(map[string]string{
		"Dockerfile": "FROM scratch\nCOPY state /state\nCOPY state /prog\nENTRYPOINT [\"/prog\"]\n",
		"state":      "not a folder",
	})
	e.d.SetHooks(fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
		spec, ok := c.Spec.(driver.ContainerSpec)
		if c.Method != "CreateContainer" || !ok || spec.Labels[driver.LabelProgram] != stateFile {
			return nil
		}
		for _, m := range spec.Mounts {
			if m.Target == "/state" {
				return fmt.Errorf("Error response from daemon: failed to create shim task: OCI runtime create failed: "+
					"runc create failed: unable to start container process: error during container init: error mounting %q "+
					"to rootfs at \"/state\": mount %s:/state (via /proc/self/fd/6), flags: 0x5000: not a directory: unknown", m.Source, m.Source)
			}
		}
		return nil
	}})
	for _, id := range []string{badMod, stateFile} {
		call("POST", "/programs/"+id+"/start", e.tokA, "")
	}
	for _, id := range []string{badMod, stateFile} {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var p programView
			if err := json.Unmarshal(call("GET", "/programs/"+id, e.tokA, ""), &p); err != nil {
				t.Fatal(err)
			}
			if p.State == "Error" && p.NextRestartAt == nil {
				t.Logf("%s: %s", id, p.ErrorMsg)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s, want Error", id, p.State)
			}
			time.Sleep(200 * time.Millisecond)
		}
		call("GET", "/programs/"+id+"/history", e.tokA, "")
		call("GET", "/programs/"+id+"/logs?tail=0", e.tokA, "")
		call("POST", "/programs/"+id+"/proxy/watcher/status", e.tokA, "")
		call("PUT", "/programs/"+id+"/secrets/..", e.tokA, `{"value":"x"}`)
	}
	call("GET", "/programs/"+stateFile+"/build-log", e.tokA, "") // the engine's own output
	call("GET", "/programs", e.tokA, "")
	var leaks []string
	for _, a := range answers {
		for _, d := range dirs {
			if strings.Contains(a, d) {
				leaks = append(leaks, a)
				break
			}
		}
	}
	if len(leaks) > 0 {
		t.Fatalf("answers that show the data directory %s:\n%s", e.dir, strings.Join(leaks, "\n"))
	}
	// The failures are still explained, in the program's own terms.
	var p programView
	json.Unmarshal(call("GET", "/programs/"+badMod, e.tokA, ""), &p)
	if !strings.Contains(p.ErrorMsg, "main.go:3") {
		t.Errorf("compile error: error_msg %q does not name the file", p.ErrorMsg)
	}
	json.Unmarshal(call("GET", "/programs/"+stateFile, e.tokA, ""), &p)
	if !strings.Contains(p.ErrorMsg, "state") {
		t.Errorf("/state a file: error_msg %q does not name the folder", p.ErrorMsg)
	}
}
