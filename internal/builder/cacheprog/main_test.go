package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// session drives serve with the given request lines and returns the
// responses it wrote.
func session(t *testing.T, c *layers, lines ...string) []response {
	t.Helper()
	var out bytes.Buffer
	if err := c.serve(strings.NewReader(strings.Join(lines, "\n")+"\n"), &out); err != nil {
		t.Fatalf("serve: %v", err)
	}
	var res []response
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("response %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	return res
}

func id(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func putLines(reqID int64, action []byte, body string) []string {
	out := sha256.Sum256([]byte(body))
	req, _ := json.Marshal(request{ID: reqID, Command: "put", ActionID: action, OutputID: out[:], BodySize: int64(len(body))})
	lines := []string{string(req)}
	if body != "" {
		lines = append(lines, `"`+base64.StdEncoding.EncodeToString([]byte(body))+`"`)
	}
	return lines
}

func getLine(reqID int64, action []byte) string {
	req, _ := json.Marshal(request{ID: reqID, Command: "get", ActionID: action})
	return string(req)
}

func TestPutThenGet(t *testing.T) {
	c := &layers{rw: t.TempDir()}
	lines := append(putLines(1, id("a1"), "compiled bytes"), getLine(2, id("a1")), getLine(3, id("a2")))
	lines = append(lines, putLines(4, id("empty"), "")...)
	lines = append(lines, getLine(5, id("empty")), `{"ID":6,"Command":"close"}`)
	res := session(t, c, lines...)
	if len(res) != 7 || len(res[0].KnownCommands) != 3 {
		t.Fatalf("responses: %+v", res)
	}
	put, hit, miss, hitEmpty := res[1], res[2], res[3], res[5]
	if put.ID != 1 || put.Err != "" || put.DiskPath == "" {
		t.Fatalf("put: %+v", put)
	}
	if b, err := os.ReadFile(put.DiskPath); err != nil || string(b) != "compiled bytes" {
		t.Fatalf("put wrote %q, %v", b, err)
	}
	want := sha256.Sum256([]byte("compiled bytes"))
	if hit.ID != 2 || hit.Miss || !bytes.Equal(hit.OutputID, want[:]) || hit.Size != 14 || hit.DiskPath != put.DiskPath || hit.Time == nil {
		t.Fatalf("get after put: %+v", hit)
	}
	if miss.ID != 3 || !miss.Miss {
		t.Fatalf("get of an unknown action: %+v", miss)
	}
	if hitEmpty.Miss || hitEmpty.Size != 0 {
		t.Fatalf("empty object: %+v", hitEmpty)
	}
	if res[6].ID != 6 {
		t.Fatalf("close not answered: %+v", res[6])
	}
}

func TestLayers(t *testing.T) {
	shared, user := t.TempDir(), t.TempDir()
	session(t, &layers{rw: shared}, putLines(1, id("std"), "fmt.a")...)

	c := &layers{rw: user, ro: []string{shared}}
	lines := append([]string{getLine(1, id("std"))}, putLines(2, id("mine"), "main.a")...)
	// The same output under another action: already in the shared layer,
	// so the user layer records the action and points there.
	lines = append(lines, putLines(3, id("alias"), "fmt.a")...)
	lines = append(lines, getLine(4, id("alias")))
	res := session(t, c, lines...)
	if res[1].Miss || !strings.HasPrefix(res[1].DiskPath, shared) {
		t.Fatalf("read-only layer not consulted: %+v", res[1])
	}
	if !strings.HasPrefix(res[2].DiskPath, user) {
		t.Fatalf("put went to %s, not the writable layer", res[2].DiskPath)
	}
	if !strings.HasPrefix(res[3].DiskPath, shared) || !strings.HasPrefix(res[4].DiskPath, shared) {
		t.Fatalf("known output written again: %+v %+v", res[3], res[4])
	}
	// Nothing of the user's reached the shared layer.
	filepath.WalkDir(shared, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, fmt.Sprintf("%x", id("mine"))) {
			t.Errorf("user entry in the shared layer: %s", p)
		}
		return nil
	})
}

func TestRefusals(t *testing.T) {
	c := &layers{rw: t.TempDir()}
	bad := putLines(1, id("x"), "body")
	var req request
	json.Unmarshal([]byte(bad[0]), &req)
	req.OutputID = id("something else")
	wrongHash, _ := json.Marshal(req)
	req.ID, req.OutputID = 2, []byte{1, 2, 3}
	shortID, _ := json.Marshal(req)
	res := session(t, c,
		string(wrongHash), bad[1],
		string(shortID), bad[1],
		`{"ID":3,"Command":"get","ActionID":"AQID"}`,
		`{"ID":4,"Command":"frobnicate"}`,
	)
	for _, r := range res[1:] {
		if r.Err == "" {
			t.Errorf("request %d accepted: %+v", r.ID, r)
		}
	}
	// A damaged entry (output of the wrong size) is a miss, not an error.
	good := session(t, c, putLines(5, id("y"), "twelve bytes")...)
	os.WriteFile(good[1].DiskPath, []byte("short"), 0o644)
	if res := session(t, c, getLine(6, id("y"))); !res[1].Miss {
		t.Fatalf("damaged entry served: %+v", res[1])
	}
}

func TestBrokenStream(t *testing.T) {
	c := &layers{rw: t.TempDir()}
	var out bytes.Buffer
	if err := c.serve(strings.NewReader("{not json\n"), &out); err == nil {
		t.Fatal("garbage accepted")
	}
	req, _ := json.Marshal(request{ID: 1, Command: "put", ActionID: id("a"), OutputID: id("b"), BodySize: maxBody + 1})
	if err := c.serve(strings.NewReader(string(req)+"\n"), &out); err == nil {
		t.Fatal("oversized body accepted")
	}
}

// TestWithGoCommand runs the real go command against the helper: a build
// with an empty user layer over a warm shared layer compiles nothing the
// shared layer has (the reason the helper exists).
func TestWithGoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles with the go command")
	}
	tmp := t.TempDir()
	helper := filepath.Join(tmp, "cacheprog")
	if out, err := exec.Command("go", "build", "-o", helper, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the helper: %v\n%s", err, out)
	}
	mod := filepath.Join(tmp, "mod")
	os.MkdirAll(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/m\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nimport \"strings\"\n\nfunc main() { println(strings.ToUpper(\"x\")) }\n"), 0o644)
	shared, user := filepath.Join(tmp, "shared"), filepath.Join(tmp, "user")

	build := func(prog string, edit string) {
		t.Helper()
		if edit != "" {
			os.WriteFile(filepath.Join(mod, "main.go"), []byte(edit), 0o644)
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(tmp, "app"), ".")
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOCACHEPROG="+prog, "GOCACHE="+filepath.Join(tmp, "gocache"), "GOFLAGS=", "CGO_ENABLED=0", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build with GOCACHEPROG=%s: %v\n%s", prog, err, out)
		}
	}
	count := func(dir string) int {
		n := 0
		filepath.WalkDir(filepath.Join(dir, "o"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	build(helper+" -w "+shared, "")
	warm := count(shared)
	if warm < 10 {
		t.Fatalf("the shared layer holds %d objects after a cold build", warm)
	}
	build(helper+" -w "+user+" -r "+shared, "package main\n\nimport \"strings\"\n\nfunc main() { println(strings.ToLower(\"X\")) }\n")
	if got := count(shared); got != warm {
		t.Errorf("the read-only layer changed: %d objects, was %d", got, warm)
	}
	// Only the changed main package and the link land in the user layer.
	if got := count(user); got == 0 || got > 6 {
		t.Errorf("user layer holds %d objects; want the few of the edited package (the shared layer has %d)", got, warm)
	}
}
