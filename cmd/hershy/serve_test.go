package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeHTTPShutsDownOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	go func() { done <- serveHTTP(ctx, ln, h, slog.New(slog.DiscardHandler)) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveHTTP: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("HERSHY_DATA", "/srv/hershy")
	if got := defaultDataDir(); got != "/srv/hershy" {
		t.Fatalf("defaultDataDir = %q", got)
	}
}

// TestServeRefusesWithoutEngine: with no engine to talk to, serve stops at
// once with exit code 1 and says so, before it opens the data directory or
// listens.
func TestServeRefusesWithoutEngine(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "no-engine.sock"))
	t.Setenv("HERSHY_CONFIG", filepath.Join(dir, "none.json"))
	data := filepath.Join(dir, "data")
	out, errOut, code := runCLI(t, "serve", "--data", data, "--listen", "127.0.0.1:0", "--runtime", "runc")
	if code != 1 || !strings.Contains(errOut, "engine does not answer") {
		t.Fatalf("serve without an engine: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "hershy.db")); !os.IsNotExist(err) {
		t.Errorf("serve created its database before finding the engine: %v", err)
	}
}
