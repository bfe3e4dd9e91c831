package hosttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/logstore"
	"github.com/hershyorg/hershy/internal/store"
)

// WaitState polls the program's record until it is in want, and fails the
// test after timeout, or at once on an Error with no restart pending when
// want is not Error (showing the build log). In a synctest bubble the
// polling costs no real time.
func WaitState(t testing.TB, h *host.Host, id string, want lifecycle.State, timeout time.Duration) store.Program {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		p, err := h.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.State == want {
			return p
		}
		if p.State == lifecycle.Error && want != lifecycle.Error && p.NextRestartAt.IsZero() {
			var log []byte
			if rc, err := h.BuildLog(ctx, p.BuildID, false); err == nil {
				log, _ = io.ReadAll(rc)
				rc.Close()
			}
			t.Fatalf("program %s in Error: %s\nbuild log:\n%s", id, p.ErrorMsg, log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %s: state %s after %s, want %s (%s)", id, p.State, timeout, want, p.ErrorMsg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ContainersOf lists the engine's containers of a program, in any state.
func ContainersOf(t testing.TB, d driver.Driver, id string) []driver.ContainerInfo {
	t.Helper()
	cs, err := d.ListContainers(context.Background(), map[string]string{driver.LabelProgram: id})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// watcher sends a request to the program's WatcherAPI the way the API's
// proxy does, and returns the status and body.
func watcher(t testing.TB, h *host.Host, id, method, path, body string) (int, []byte) {
	t.Helper()
	base, rt, err := h.WatcherAPI(id)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// WatcherGet GETs path of the program's WatcherAPI and decodes its JSON
// answer, failing the test unless it is a 200.
func WatcherGet(t testing.TB, h *host.Host, id, path string) map[string]any {
	t.Helper()
	code, b := watcher(t, h, id, http.MethodGet, path, "")
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v: %s", path, code, err, b)
	}
	return out
}

// WatcherSend posts a message to the program's WatcherAPI.
func WatcherSend(t testing.TB, h *host.Host, id, msg string) {
	t.Helper()
	if code, b := watcher(t, h, id, http.MethodPost, "/watcher/message", fmt.Sprintf(`{"content":%q}`, msg)); code != http.StatusOK {
		t.Fatalf("message %q: %d %s", msg, code, b)
	}
}

// LogLines returns the program's captured output lines that contain
// prefix, each from prefix on.
func LogLines(t testing.TB, h *host.Host, id, prefix string) []string {
	t.Helper()
	var out []string
	err := h.Logs(context.Background(), id, logstore.Query{}, func(l logstore.Line) error {
		if i := strings.Index(l.Text, prefix); i >= 0 {
			out = append(out, l.Text[i:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
