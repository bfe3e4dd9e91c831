package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// TestServiceReload runs the Host as its systemd unit does: settings from
// a config file, logs as JSON lines. A quota lowered in the file holds; a
// SIGHUP after the file raises it lets the refused request through,
// without a restart. SIGTERM then stops the Host with exit status 0.
func TestServiceReload(t *testing.T) { forEachRuntime(t, testServiceReload) }

func testServiceReload(t *testing.T, rt string) {
	cfg := filepath.Join(t.TempDir(), "serve.json")
	if err := os.WriteFile(cfg, []byte(`{"max-programs": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHostWith(t, rt, []string{"--config", cfg, "--log-format", "json"}, nil)
	alice := h.user("alice")
	ctx := context.Background()
	files := readSource(t, filepath.Join(examplesDir, "simple-counter"))
	if _, err := alice.CreateProgram(ctx, client.SourceRequest{SrcFiles: files}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateProgram(ctx, client.SourceRequest{SrcFiles: files}); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("a second program with max-programs 1 in the config file: %v, want 403", err)
	}
	if err := os.WriteFile(cfg, []byte(`{"max-programs": 2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := alice.CreateProgram(ctx, client.SourceRequest{SrcFiles: files})
		if err == nil {
			break
		}
		if !client.IsStatus(err, http.StatusForbidden) || time.Now().After(deadline) {
			t.Fatalf("after the SIGHUP: %v", err)
		}
	}
	b, _ := os.ReadFile(h.logPath)
	lines := 0
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "---- hershy serve") {
			continue // the test's own marker of each start
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] == nil || m["level"] == nil {
			t.Errorf("a log line that is not a JSON record: %q", line)
		}
		lines++
	}
	if lines == 0 || !strings.Contains(string(b), `"msg":"SIGHUP: reloaded"`) {
		t.Errorf("the log has %d JSON records, and the reload's? %.2000s", lines, b)
	}
	h.stop() // SIGTERM: fails the test unless it exits 0 within a minute
}
