package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests drive the CLI, exactly as a user would, against a real Host
// (real engine, real builds) served over HTTP on 127.0.0.1. Outside CI they
// skip when no engine answers; in CI (CI set) a missing engine fails them.

const counterDir = "../../examples/simple-counter"

func TestE2ECLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	// Not parallel: it sets HERSHY_URL and HERSHY_TOKEN.
	start := time.Now()
	e := startE2EHost(t, "runc")
	admin := e.adminToken

	// token create: the admin mints tokens for alice and bob.
	newToken := func(user string) string {
		r := e.ok(t, admin, "token", "create", user)
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "token for "+user+" (id ") {
			t.Fatalf("token create %s: %s", user, r)
		}
		return strings.TrimSpace(lines[1])
	}
	alice, bob := newToken("alice"), newToken("bob")
	if alice == "" || bob == "" || alice == bob || alice == admin {
		t.Fatalf("tokens: alice %q bob %q", alice, bob)
	}
	// A user token may not create tokens.
	if r := e.as(t, alice, "token", "create", "mallory"); r.code != 1 || !strings.Contains(r.errOut, "403") {
		t.Errorf("token create as alice: want exit 1 with 403: %s", r)
	}

	// deploy: create, build, start, wait for Ready.
	src := copyDir(t, counterDir, nil)
	r := e.ok(t, alice, "deploy", src)
	id := field(r.out, "Program")
	if id == "" || field(r.out, "State") != "Ready" {
		t.Fatalf("deploy output lacks the program id or Ready: %s", r)
	}
	if !strings.Contains(r.errOut, "Created program "+id) || !strings.Contains(r.errOut, "[state] Ready") {
		t.Errorf("deploy progress: %s", r)
	}
	if got, want := field(r.out, "API"), e.url+"/programs/"+id; got != want {
		t.Errorf("deploy API line %q, want %q", got, want)
	}
	t.Logf("deployed %s after %s", id, time.Since(start).Round(time.Millisecond))

	// ps: the table lists it, Ready under runc, owned by alice; -o json parses.
	r = e.ok(t, alice, "ps")
	if !strings.HasPrefix(r.out, "ID ") || !tableRowHas(r.out, id, "alice", "Ready", "runc") {
		t.Errorf("ps table lacks %s alice Ready runc:\n%s", id, r.out)
	}
	r = e.ok(t, alice, "-o", "json", "ps")
	if !psJSONHas(r.out, id) {
		t.Errorf("ps -o json lacks %s:\n%s", id, r.out)
	}

	// The same listing with the Host and token from the environment, as a
	// user with HERSHY_URL and HERSHY_TOKEN exported would run it.
	t.Setenv("HERSHY_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("HERSHY_URL", e.url)
	t.Setenv("HERSHY_TOKEN", alice)
	if r = runEnvCLI("ps"); r.code != 0 || !tableRowHas(r.out, id, "alice", "Ready") {
		t.Errorf("ps with HERSHY_URL and HERSHY_TOKEN: %s", r)
	}
	t.Setenv("HERSHY_TOKEN", bob)
	if r = runEnvCLI("ps"); r.code != 0 || strings.Contains(r.out, id) {
		t.Errorf("ps with bob's HERSHY_TOKEN lists alice's program: %s", r)
	}
	t.Setenv("HERSHY_TOKEN", "")
	if r = runEnvCLI("ps"); r.code != 1 || !strings.Contains(r.errOut, "401") {
		t.Errorf("ps without a token: want exit 1 with 401: %s", r)
	}

	// inspect: the detail view.
	r = e.ok(t, alice, "inspect", id)
	for key, want := range map[string]string{"ID": id, "User": "alice", "State": "Ready", "Runtime": "runc"} {
		if got := field(r.out, key); got != want {
			t.Errorf("inspect %s: %q, want %q\n%s", key, got, want, r.out)
		}
	}
	if field(r.out, "Container") == "-" || field(r.out, "Build") == "-" {
		t.Errorf("inspect lacks container or build:\n%s", r.out)
	}

	// status: the WatcherAPI answers through the proxy.
	r = e.ok(t, alice, "status", id)
	if field(r.out, "Program") != id || field(r.out, "Running") != "true" {
		t.Errorf("status: want Running true:\n%s", r.out)
	}

	// logs: the counter ticks.
	e.eventually(t, alice, "counter: 2", 20*time.Second, "logs", "--tail", "20", id)

	// send reset: the counter goes back to 0 (only a reset logs "counter: 0").
	r = e.ok(t, alice, "send", id, "reset")
	if strings.TrimSpace(r.out) != id+": message sent" {
		t.Errorf("send: %q", r.out)
	}
	r = e.eventually(t, alice, "counter: 0", 15*time.Second, "logs", "--tail", "20", id)
	if n := len(strings.Split(strings.TrimRight(r.out, "\n"), "\n")); n > 20 {
		t.Errorf("logs --tail 20 printed %d lines", n)
	}

	// deploy --program: new source for the running program.
	src2 := copyDir(t, counterDir, func(name, s string) string {
		if name == "main.go" {
			return strings.Replace(s, `log.Printf("counter: %d", n)`, `log.Printf("tally: %d", n)`, 1)
		}
		return s
	})
	r = e.ok(t, alice, "deploy", "--program", id, src2)
	if field(r.out, "Program") != id || field(r.out, "State") != "Ready" || !strings.Contains(r.errOut, "Updated source of "+id) {
		t.Errorf("deploy --program: %s", r)
	}
	e.eventually(t, alice, "tally: ", 20*time.Second, "logs", "--tail", "20", id)

	// source: the listing names main.go; the download is the new main.go,
	// byte for byte; an existing folder is refused and left alone.
	r = e.ok(t, alice, "source", id)
	if !tableRowHas(r.out, "main.go") {
		t.Errorf("source: no main.go row:\n%s", r.out)
	}
	got := filepath.Join(t.TempDir(), "got")
	e.ok(t, alice, "source", id, got)
	want, _ := os.ReadFile(filepath.Join(src2, "main.go"))
	if b, err := os.ReadFile(filepath.Join(got, "main.go")); err != nil || string(b) != string(want) {
		t.Errorf("source %s %s: main.go differs from the deployed one (%v)", id, got, err)
	}
	if r = e.as(t, alice, "source", id, got); r.code != 1 || !strings.Contains(r.errOut, "exists") {
		t.Errorf("source into an existing folder: want exit 1 naming it: %s", r)
	}

	// stop, start, restart.
	r = e.ok(t, alice, "stop", id)
	if !strings.HasPrefix(r.out, id+": ") {
		t.Errorf("stop: %q", r.out)
	}
	e.waitState(t, alice, id, "Stopped", 30*time.Second)
	if r := e.as(t, alice, "status", id); r.code == 0 {
		t.Errorf("status of a stopped program succeeded: %s", r)
	}
	r = e.ok(t, alice, "start", id)
	if !strings.HasPrefix(r.out, id+": ") {
		t.Errorf("start: %q", r.out)
	}
	p := e.waitState(t, alice, id, "Ready", 60*time.Second)
	cid := p["container_id"]
	r = e.ok(t, alice, "restart", id)
	if !strings.HasPrefix(r.out, id+": ") {
		t.Errorf("restart: %q", r.out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		p = e.inspectJSON(t, alice, id)
		if p["state"] == "Ready" && p["container_id"] != cid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart: no new Ready container after 60s: %v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.eventually(t, alice, "Running:      true", 20*time.Second, "status", id)

	// bob sees nothing of alice's program.
	for _, args := range [][]string{{"inspect", id}, {"stop", id}, {"rm", id}, {"logs", id}} {
		r = e.as(t, bob, args...)
		if r.code != 1 || !strings.Contains(r.errOut, "(404): program "+id+" not found") {
			t.Errorf("bob: hershy %s: want exit 1 with 404: %s", strings.Join(args, " "), r)
		}
	}
	if r = e.ok(t, bob, "ps"); strings.Contains(r.out, id) {
		t.Errorf("bob's ps lists alice's program:\n%s", r.out)
	}
	// the admin sees it.
	if r = e.ok(t, admin, "ps"); !tableRowHas(r.out, id, "alice") {
		t.Errorf("admin ps lacks %s:\n%s", id, r.out)
	}

	// rm: gone from ps and inspect.
	r = e.ok(t, alice, "rm", id)
	if strings.TrimSpace(r.out) != id+" deleted" {
		t.Errorf("rm: %q", r.out)
	}
	if r = e.ok(t, alice, "ps"); strings.Contains(r.out, id) {
		t.Errorf("ps still lists %s after rm:\n%s", id, r.out)
	}
	if r = e.as(t, alice, "inspect", id); r.code != 1 || !strings.Contains(r.errOut, "404") {
		t.Errorf("inspect after rm: want exit 1 with 404: %s", r)
	}

	// A program that does not compile: exit 1 with the compiler's message.
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "go.mod"), "module example.com/bad\n\ngo 1.25\n")
	writeFile(t, filepath.Join(bad, "main.go"), "package main\n\nfunc main() {\n\tnotDefined()\n}\n")
	r = e.as(t, alice, "deploy", bad)
	// The final error (not only the streamed build log) carries the message.
	_, final, _ := strings.Cut(r.errOut, "hershy: deploy: ")
	if r.code != 1 || !strings.Contains(final, "failed") || !strings.Contains(final, "./main.go:4:2: undefined: notDefined") {
		t.Errorf("deploy of a broken program: want exit 1 with the compiler's message: %s", r)
	}
	if field(r.out, "State") != "" {
		t.Errorf("a failed deploy printed a result:\n%s", r.out)
	}
	t.Logf("end-to-end CLI run took %s", time.Since(start).Round(time.Millisecond))
}

// TestE2ECLIRunsc deploys under gVisor, the Host's default runtime.
func TestE2ECLIRunsc(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	e := startE2EHost(t, "runsc")
	r := e.ok(t, e.adminToken, "deploy", "--user", "carol", copyDir(t, counterDir, nil))
	id := field(r.out, "Program")
	if id == "" || field(r.out, "State") != "Ready" {
		t.Fatalf("deploy: %s", r)
	}
	r = e.ok(t, e.adminToken, "inspect", id)
	if field(r.out, "Runtime") != "runsc" || field(r.out, "User") != "carol" {
		t.Errorf("inspect: want runsc and carol:\n%s", r.out)
	}
	r = e.ok(t, e.adminToken, "status", id)
	if field(r.out, "Running") != "true" {
		t.Errorf("status: %s", r.out)
	}
	e.eventually(t, e.adminToken, "counter: 1", 20*time.Second, "logs", id)
	e.ok(t, e.adminToken, "rm", id)
	if r = e.ok(t, e.adminToken, "ps"); strings.Contains(r.out, id) {
		t.Errorf("ps lists %s after rm:\n%s", id, r.out)
	}
}

// tableRowHas reports whether one line of a table has all the cells.
func tableRowHas(out string, cells ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		ok := len(f) > 0
		for _, c := range cells {
			found := false
			for _, x := range f {
				if x == c {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			return true
		}
	}
	return false
}

func psJSONHas(out, id string) bool {
	var list struct {
		Programs []struct {
			ProgramID string `json:"program_id"`
			UserID    string `json:"user_id"`
			State     string `json:"state"`
		} `json:"programs"`
	}
	if json.Unmarshal([]byte(out), &list) != nil {
		return false
	}
	for _, p := range list.Programs {
		if p.ProgramID == id && p.UserID == "alice" && p.State == "Ready" {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
