package builder

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// dockerRuntimes returns the OCI runtimes of a Docker engine that answers,
// or skips the test.
func dockerRuntimes(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Docker engine (-short)")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{range $k, $v := .Runtimes}}{{$k}} {{end}}").Output()
	if err != nil {
		t.Skipf("no Docker engine answers (run scripts/setup-engine.sh): %v", err)
	}
	var rts []string
	for _, rt := range strings.Fields(string(out)) {
		if rt == driver.RuntimeRunc || rt == driver.RuntimeRunsc {
			rts = append(rts, rt)
		}
	}
	return rts
}

// probeMain reports, as JSON, what a program sees inside its image.
const probeMain = `package main

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"os/user"

	"github.com/hershyorg/hershy/hersh"
)

func main() {
	facts := map[string]any{
		"uid":      os.Getuid(),
		"gid":      os.Getgid(),
		"stateDir": os.Getenv(hersh.EnvStateDir),
		"apiAddr":  os.Getenv(hersh.EnvAPIAddr),
	}
	if u, err := user.Current(); err == nil {
		facts["user"] = u.Username
	}
	facts["stateWrite"] = os.WriteFile("/state/probe", []byte("ok"), 0o600) == nil
	facts["rootWrite"] = os.WriteFile("/probe", []byte("no"), 0o600) == nil
	if fi, err := os.Stat("/tmp"); err == nil {
		facts["tmpSticky"] = fi.Mode()&os.ModeSticky != 0 && fi.Mode().Perm() == 0o777
	}
	if pool, err := x509.SystemCertPool(); err == nil {
		facts["certs"] = len(pool.Subjects()) //nolint:staticcheck // a count is all we need
	}
	json.NewEncoder(os.Stdout).Encode(facts)
}
`

func TestDockerImageRuns(t *testing.T) {
	rts := dockerRuntimes(t)
	b, err := New(t.TempDir(), testEngine(t), Options{SharedCacheDir: testSharedCache, GoProxy: "off", Runtime: driver.RuntimeRunc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	req := storeSource(t, "", helloProgram(probeMain))
	req.Tag = "hershy-buildtest-" + req.BuildID
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", req.Tag).Run() })

	var log bytes.Buffer
	start := time.Now()
	id, err := b.Build(context.Background(), req, &log)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	t.Logf("built %s in %s", id, time.Since(start))

	out, err := exec.Command("docker", "image", "inspect", "--format", "{{json .Config}}", req.Tag).Output()
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		User       string
		Env        []string
		Entrypoint []string
		Labels     map[string]string
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.User != "65532:65532" || strings.Join(cfg.Entrypoint, " ") != "/app" ||
		cfg.Labels[driver.LabelBuild] != req.BuildID || cfg.Labels[driver.LabelManaged] != "true" {
		t.Errorf("image config = %+v", cfg)
	}

	for _, rt := range rts {
		t.Run(rt, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--runtime", rt, "--network", "none",
				"--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", "128", req.Tag).CombinedOutput()
			if err != nil {
				t.Fatalf("docker run: %v\n%s", err, out)
			}
			var facts map[string]any
			if err := json.Unmarshal(out, &facts); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			want := map[string]any{
				"uid": 65532.0, "gid": 65532.0, "user": "hersh", "stateDir": "/state", "apiAddr": "127.0.0.1:8080",
				"stateWrite": true, "rootWrite": false, "tmpSticky": true,
			}
			for k, v := range want {
				if facts[k] != v {
					t.Errorf("%s = %v, want %v (all: %v)", k, facts[k], v, facts)
				}
			}
			if n, _ := facts["certs"].(float64); n < 10 {
				t.Errorf("only %v CA certificates in the image", facts["certs"])
			}
		})
	}

	// Building again reuses the image.
	log.Reset()
	if id2, err := b.Build(context.Background(), req, &log); err != nil || id2 != req.Tag {
		t.Fatalf("rebuild = %q, %v; want the tag, reused\n%s", id2, err, log.String())
	}
}

// TestImportChangedBinary: a binary that grew or shrank after it was
// measured makes no image. The grown one is the sharp case: its announced
// bytes are whole, and a layer that ended cleanly there would be taken by
// the engine as an image with /app and nothing after it (no /etc/passwd,
// no /state).
func TestImportChangedBinary(t *testing.T) {
	engine := testEngine(t)
	b, err := New(t.TempDir(), engine, Options{SharedCacheDir: t.TempDir(), GoProxy: "off"})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"grown": "\x7fELF program+more", "shrunk": "\x7fELF"} {
		tag := "hershy-buildtest-changed-" + strings.ToLower(rand.Text()[:10])
		spec, files := goImage(tag, map[string]string{driver.LabelManaged: "true"}, strings.NewReader(content), int64(len("\x7fELF program")), b.caCerts)
		id, err := b.importLayer(context.Background(), spec, files)
		if err == nil {
			engine.RemoveImage(context.Background(), id)
			t.Errorf("%s: imported as %s", name, id)
		} else if !strings.Contains(err.Error(), "/app") {
			t.Errorf("%s: %v, want the writer's error about /app", name, err)
		}
		if ok, _ := engine.ImageExists(context.Background(), tag); ok {
			engine.RemoveImage(context.Background(), tag)
			t.Errorf("%s: an image was made", name)
		}
	}
}
