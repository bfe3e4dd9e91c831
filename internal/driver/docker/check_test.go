package docker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/driver"
)

// TestCheckClassifies: an engine that does not answer is ErrEngineDown; a
// runtime the engine registers whose binary is gone from this machine is
// ErrRuntimeMissing (the engine keeps it registered until it reloads, and
// every start fails); a relative path (runc's, found on dockerd's PATH) is
// left to the engine. The engine here is a stand-in on a unix socket that
// answers the two calls Check makes as Docker 20.10 does.
func TestCheckClassifies(t *testing.T) {
	dir, err := os.MkdirTemp("", "hershy-check-") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/info"):
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"Runtimes":{"runc":{"path":"runc"},"here":{"path":"/bin/sh"},"gone":{"path":"` + dir + `/runsc"}}}`))
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()

	t.Setenv("DOCKER_HOST", "unix://"+sock)
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		runtimes []string
		want     error
	}{
		{nil, nil},
		{[]string{"runc", "here"}, nil},
		{[]string{"gone"}, driver.ErrRuntimeMissing},
		{[]string{"runc", "absent"}, driver.ErrRuntimeMissing},
	} {
		err := d.Check(ctx, tc.runtimes...)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("Check(%v) = %v, want %v", tc.runtimes, err, tc.want)
		}
	}

	srv.Close()
	if err := d.Check(ctx); !errors.Is(err, driver.ErrEngineDown) {
		t.Errorf("an engine that does not answer: %v, want ErrEngineDown", err)
	}
}
