package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// TestBuildFailures: a Dockerfile the builder rejects (it passes the Host's
// policy, but COPYs a file the context lacks) and a Go program that does
// not compile are accepted (they are well-formed input), end in Error
// with the builder's own message in error_msg and the build log, and
// leave nothing running; a Dockerfile naming an image the engine lacks is
// refused by the build, never pulled. Fixing the source brings the program
// up.
func TestBuildFailures(t *testing.T) { forEachRuntime(t, testBuildFailures) }

func testBuildFailures(t *testing.T, rt string) {
	h := startHost(t, rt)
	alice := h.user("alice")
	tag := nonce()

	badDockerfile := h.deploy(t, alice, "bad-dockerfile", client.SourceRequest{
		Dockerfile: "FROM scratch\nLABEL e2e=" + tag + "\nCOPY not-there.txt /x\n",
		SrcFiles:   map[string]string{"a.txt": "a\n"},
	})
	missingBase := h.deploy(t, alice, "missing-base", client.SourceRequest{
		Dockerfile: "FROM hershy-e2e-no-such-image:" + tag + "\nCOPY a.txt /a.txt\n",
		SrcFiles:   map[string]string{"a.txt": "a\n"},
	})
	files := readSource(t, "testdata/probe")
	files["broken.go"] = "package main\n\nfunc broken() int { return undefinedThing }\n"
	noCompile := h.deploy(t, alice, "no-compile", client.SourceRequest{SrcFiles: files})

	for _, tc := range []struct {
		p    *program
		want string
	}{
		{badDockerfile, "not-there.txt"},
		{missingBase, "never pulled"},
		{noCompile, "undefined: undefinedThing"},
	} {
		pr := tc.p.waitState("Error", 3*time.Minute)
		t.Logf("%s: %s", tc.p.name, pr.ErrorMsg)
		if !strings.Contains(strings.ToLower(pr.ErrorMsg), strings.ToLower(tc.want)) {
			t.Errorf("%s: error_msg %q lacks %q", tc.p.name, pr.ErrorMsg, tc.want)
		}
		if pr.ContainerID != "" {
			t.Errorf("%s: has container %s", tc.p.name, pr.ContainerID)
		}
		if log := tc.p.buildLog(); !strings.Contains(strings.ToLower(log), strings.ToLower(tc.want)) {
			t.Errorf("%s: build log lacks %q:\n%s", tc.p.name, tc.want, log)
		}
		if code, m := tc.p.watcher(http.MethodGet, "/watcher/status", nil); code != http.StatusServiceUnavailable {
			t.Errorf("%s: proxy to a program in Error: %d %v", tc.p.name, code, m)
		}
	}

	// Fixed source: the same program builds and comes up.
	delete(files, "broken.go")
	if _, err := alice.UpdateSource(context.Background(), noCompile.id, client.SourceRequest{SrcFiles: files}); err != nil {
		t.Fatal(err)
	}
	noCompile.action("start", "Ready")
	if code, m := noCompile.watcher(http.MethodGet, "/watcher/status", nil); code != 200 {
		t.Errorf("fixed program: status %d %v", code, m)
	}
}
