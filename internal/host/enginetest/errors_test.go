package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/api"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/testenv"
)

// TestNoDataDirInEngineErrors sends hostile programs whose failures the go
// command and the engine describe with absolute paths (a program that does
// not compile; an image whose /state is a file, so the engine cannot mount
// the program's state folder there) and checks that no answer of the API,
// error_msg, history and the engine's own build output included, shows the
// Host's data directory: the scrubbing holds against the engine's real
// messages. (package api's TestNoDataDirInErrors checks the same with a
// fake engine, and more requests.)
func TestNoDataDirInEngineErrors(t *testing.T) {
	d := testenv.Engine(t, driver.RuntimeRunc)
	dir := t.TempDir()
	h := hosttest.Open(t, dir, driver.RuntimeRunc, d)
	ctx := context.Background()
	handler, err := api.New(h, api.Options{DataDir: dir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		srv.Close()
		handler.Close()
	})
	tok, _, err := h.Tokens().Create(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{dir}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real != dir {
		dirs = append(dirs, real)
	}
	var answers []string
	call := func(method, path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answers = append(answers, fmt.Sprintf("%s %s (%d): %s", method, path, resp.StatusCode, b))
		return b
	}
	type program struct {
		ID       string `json:"program_id"`
		State    string `json:"state"`
		ErrorMsg string `json:"error_msg"`
		Next     any    `json:"next_restart_at"`
	}
	create := func(files map[string]string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"src_files": files, "restart_policy": "never"})
		var p program
		if err := json.Unmarshal(call("POST", "/programs", string(body)), &p); err != nil || p.ID == "" {
			t.Fatalf("create: %+v %v", p, err)
		}
		return p.ID
	}
	badCode := create(map[string]string{"go.mod": "module x\n\ngo 1.25\n", "main.go": "package main\n\nfunc main() { nope }\n"})
	stateFile := create(map[string]string{
		"Dockerfile": "FROM scratch\nCOPY state /state\nCOPY state /prog\nENTRYPOINT [\"/prog\"]\n",
		"state":      "not a folder",
	})
	for _, id := range []string{badCode, stateFile} {
		call("POST", "/programs/"+id+"/start", "")
	}
	failed := map[string]program{}
	for _, id := range []string{badCode, stateFile} {
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			var p program
			if err := json.Unmarshal(call("GET", "/programs/"+id, ""), &p); err != nil {
				t.Fatal(err)
			}
			if p.State == "Error" && p.Next == nil {
				failed[id] = p
				t.Logf("%s: %s", id, p.ErrorMsg)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s, want Error", id, p.State)
			}
		}
		call("GET", "/programs/"+id+"/history", "")
		call("GET", "/programs/"+id+"/build-log", "")
	}
	for _, a := range answers {
		for _, d := range dirs {
			if strings.Contains(a, d) {
				t.Errorf("an answer shows the data directory %s: %s", d, a)
			}
		}
	}
	// The failures are still explained, in the program's own terms.
	if msg := failed[badCode].ErrorMsg; !strings.Contains(msg, "main.go:3") {
		t.Errorf("compile error: error_msg %q does not name the file", msg)
	}
	if msg := failed[stateFile].ErrorMsg; !strings.Contains(msg, "state") {
		t.Errorf("/state a file: error_msg %q does not name the folder", msg)
	}
	for _, id := range []string{badCode, stateFile} {
		if err := h.Delete(ctx, id); err != nil {
			t.Error(err)
		}
	}
}
