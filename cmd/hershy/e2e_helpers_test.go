package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/testenv"

	"github.com/hershyorg/hershy/internal/api"
)

// e2eHost is a real Host (real engine, real builds) served over HTTP on
// 127.0.0.1, as `hershy serve` would serve it.
type e2eHost struct {
	url, adminToken string
}

// startE2EHost opens a Host on a temporary directory and serves its API.
func startE2EHost(t *testing.T, rt string) *e2eHost {
	t.Helper()
	d := testenv.Engine(t, rt)
	dir := t.TempDir()
	ctx := context.Background()
	h := hosttest.Open(t, dir, rt, d)
	tok, _, created, err := h.Tokens().EnsureAdmin(ctx, dir)
	if err != nil || !created || tok == "" {
		t.Fatalf("EnsureAdminToken: %q created=%v %v", tok, created, err)
	}
	srv := httptest.NewUnstartedServer(nil)
	handler, err := api.New(h, api.Options{DataDir: dir, Version: "e2e", ProxyBase: "http://" + srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { handler.Close() })
	srv.Config.Handler = handler
	srv.Start()
	t.Cleanup(srv.Close) // runs before h.Close
	return &e2eHost{url: srv.URL, adminToken: tok}
}

// cliResult is one CLI invocation's exit code and output.
type cliResult struct {
	code        int
	out, errOut string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
}

// as runs the CLI through the same path as main with token's identity;
// --url and --token are always given, so no environment or config file of
// the machine running the test is consulted.
func (e *e2eHost) as(t *testing.T, token string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"--url", e.url, "--token", token}, args...)
	code := run(ctx, full, &out, &errOut)
	return cliResult{code: code, out: out.String(), errOut: errOut.String()}
}

// runEnvCLI runs the CLI with args alone, as main does: URL and token come
// from the environment or the config file.
func runEnvCLI(args ...string) cliResult {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := run(ctx, args, &out, &errOut)
	return cliResult{code: code, out: out.String(), errOut: errOut.String()}
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *e2eHost) ok(t *testing.T, token string, args ...string) cliResult {
	t.Helper()
	r := e.as(t, token, args...)
	if r.code != 0 {
		t.Fatalf("hershy %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// inspectJSON returns `inspect -o json ID` decoded.
func (e *e2eHost) inspectJSON(t *testing.T, token, id string) map[string]any {
	t.Helper()
	r := e.ok(t, token, "-o", "json", "inspect", id)
	var p map[string]any
	if err := json.Unmarshal([]byte(r.out), &p); err != nil {
		t.Fatalf("inspect -o json: %v\n%s", err, r.out)
	}
	return p
}

// waitState polls `inspect -o json` until the program is in want.
func (e *e2eHost) waitState(t *testing.T, token, id, want string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := e.inspectJSON(t, token, id)
		if p["state"] == want {
			return p
		}
		if p["state"] == "Error" && want != "Error" {
			t.Fatalf("program %s in Error, want %s: %v", id, want, p["error_msg"])
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %s: state %v after %s, want %s", id, p["state"], timeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// eventually runs the CLI until its stdout contains want.
func (e *e2eHost) eventually(t *testing.T, token, want string, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := e.as(t, token, args...)
		if r.code == 0 && strings.Contains(r.out, want) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("hershy %s: no %q after %s: %s", strings.Join(args, " "), want, timeout, r)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// copyDir copies the regular files of src (not recursively) into a new
// temporary directory, applying edit to each file's content.
func copyDir(t *testing.T, src string, edit func(name, content string) string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if !ent.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if edit != nil {
			s = edit(ent.Name(), s)
		}
		if err := os.WriteFile(filepath.Join(dst, ent.Name()), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// field returns the value of a "Key:   value" line of the CLI's output.
func field(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
