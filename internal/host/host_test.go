package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/testenv"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/logstore"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// These tests drive the Host against the real engine, under runc and
// runsc. Outside CI they skip when no engine answers; in CI (CI set) a
// missing engine fails them.

// counterProgram is a small hersh program: it ticks, answers "crash" by
// exiting with code 3, and keeps a counter in /state.
func counterProgram(t *testing.T) source.Files {
	t.Helper()
	main, err := os.ReadFile("testdata/counter/main.go")
	if err != nil {
		t.Fatal(err)
	}
	return source.Files{
		"main.go": string(main),
		"go.mod":  "module example.com/counter\n\ngo 1.25\n\nrequire github.com/hershyorg/hershy/hersh v0.0.0\n",
	}
}

// openHost opens a Host with the test settings, changed by more: the
// Host's tests' one helper for it (packages above the Host use
// hosttest.Open, which this package cannot import). The caller closes it:
// some tests close and reopen it on purpose.
func openHost(t *testing.T, dir, rt string, d driver.Driver, more ...func(*Options)) *Host {
	t.Helper()
	o := Options{
		DataDir: dir, Runtime: rt, StartTimeout: 60 * time.Second, StopGrace: 5 * time.Second,
		Backoff: lifecycle.Backoff{Base: time.Second, Max: 4 * time.Second, HealthyReset: time.Hour},
		Build:   testenv.GoCaches(t),
	}
	for _, f := range more {
		f(&o)
	}
	h, err := Open(context.Background(), o, d)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitState polls the record until the program is in want (or fails on
// Error when want is not Error).
func waitState(t *testing.T, h *Host, id string, want lifecycle.State, timeout time.Duration) store.Program {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := h.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if p.State == want {
			t.Logf("%s reached %s after %s", id[:12], want, timeout-time.Until(deadline))
			return p
		}
		if p.State == lifecycle.Error && want != lifecycle.Error && p.NextRestartAt.IsZero() {
			log, _ := h.BuildLog(context.Background(), p.BuildID, false)
			var b []byte
			if log != nil {
				b, _ = io.ReadAll(log)
				log.Close()
			}
			t.Fatalf("program %s in Error: %s\nbuild log:\n%s", id, p.ErrorMsg, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %s: state %s after %s, want %s (%s)", id, p.State, timeout, want, p.ErrorMsg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func containersOf(t *testing.T, d driver.Driver, id string) []driver.ContainerInfo {
	t.Helper()
	cs, err := d.ListContainers(context.Background(), map[string]string{driver.LabelProgram: id})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func watcherGet(t *testing.T, h *Host, id, path string) map[string]any {
	t.Helper()
	base, rt, err := h.WatcherAPI(id)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 10 * time.Second}).Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %v", path, resp.Status, err)
	}
	return out
}

func watcherSend(t *testing.T, h *Host, id, msg string) {
	t.Helper()
	base, rt, err := h.WatcherAPI(id)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 10 * time.Second}).Post(base+"/watcher/message", "application/json",
		strings.NewReader(fmt.Sprintf(`{"content":%q}`, msg)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("message %q: %s", msg, resp.Status)
	}
}

func TestLifecycleAgainstTheEngine(t *testing.T) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			d := testenv.Engine(t, rt)
			dir := t.TempDir()
			h := openHost(t, dir, rt, d)
			defer h.Close()
			ctx := context.Background()

			p, err := h.Create(ctx, CreateRequest{UserID: "alice", Files: counterProgram(t)})
			if err != nil {
				t.Fatal(err)
			}
			id := p.ID
			if p.State != "Created" || !strings.HasPrefix(id, "alice-"+p.BuildID+"-") {
				t.Fatalf("created %+v", p)
			}
			if _, err := h.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			p = waitState(t, h, id, lifecycle.Ready, 3*time.Minute)
			if p.Runtime != rt || p.ContainerID == "" {
				t.Fatalf("ready program %+v", p)
			}
			if st := watcherGet(t, h, id, "/watcher/status"); st["isRunning"] != true {
				t.Fatalf("status %v", st)
			}
			testenv.CheckContract(t, d, p.ContainerID, testenv.Contract{Runtime: rt, StateDir: filepath.Join(dir, "programs", id, "state"), Limits: DefaultLimits})
			if _, err := h.Start(ctx, id); err == nil {
				t.Fatal("start while Ready accepted")
			}

			// Stop, then start without a rebuild.
			if _, err := h.Stop(ctx, id); err != nil {
				t.Fatal(err)
			}
			waitState(t, h, id, lifecycle.Stopped, time.Minute)
			if cs := containersOf(t, d, id); len(cs) != 0 {
				t.Fatalf("containers after stop: %+v", cs)
			}
			b1, err := buildRecord(t, h, p.BuildID)
			if err != nil {
				t.Fatal(err)
			}
			h.Start(ctx, id)
			p2 := waitState(t, h, id, lifecycle.Ready, time.Minute)
			if b2, _ := buildRecord(t, h, p.BuildID); !b2.StartedAt.Equal(b1.StartedAt) {
				t.Fatal("start from Stopped rebuilt the image")
			}

			// Restart really restarts: a new container.
			h.Restart(ctx, id)
			p3 := waitState(t, h, id, lifecycle.Ready, time.Minute)
			if p3.ContainerID == p2.ContainerID {
				t.Fatal("restart kept the same container")
			}

			// The restart policy can be changed by the operator.
			if q, err := h.SetRestartPolicy(ctx, id, "always"); err != nil || q.Policy != lifecycle.RestartAlways {
				t.Fatalf("set policy: %+v %v", q, err)
			}
			if _, err := h.SetRestartPolicy(ctx, id, "sometimes"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("bad policy accepted: %v", err)
			}

			// A crash is seen on the event stream and restarted with backoff.
			watcherSend(t, h, id, "crash")
			p4 := waitState(t, h, id, lifecycle.Error, 30*time.Second)
			if p4.LastExitCode == nil || *p4.LastExitCode != 3 || p4.NextRestartAt.IsZero() || p4.RestartCount != 1 {
				t.Fatalf("after a crash: %+v", p4)
			}
			p5 := waitState(t, h, id, lifecycle.Ready, time.Minute)
			if p5.RestartCount != 1 || p5.ContainerID == p3.ContainerID {
				t.Fatalf("after the automatic restart: %+v", p5)
			}
			// State survived every restart.
			if v := watcherGet(t, h, id, "/watcher/varState"); v["variables"] == nil {
				t.Fatalf("varState %v", v)
			}

			// Logs were captured, demultiplexed.
			var lines []string
			h.Logs(ctx, id, logstore.Query{}, func(l logstore.Line) error { lines = append(lines, l.Text); return nil })
			if !strings.Contains(strings.Join(lines, "\n"), "counter starts") {
				t.Fatalf("captured logs: %q", lines)
			}

			// History was kept.
			tr, _ := h.Transitions(ctx, id, 0)
			if len(tr) < 10 {
				t.Fatalf("transitions: %+v", tr)
			}

			// Delete leaves nothing behind.
			if err := h.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			if cs := containersOf(t, d, id); len(cs) != 0 {
				t.Fatalf("containers after delete: %+v", cs)
			}
			if ok, _ := d.ImageExists(ctx, imageTag(p.BuildID)); ok {
				t.Fatal("image left after delete")
			}
			if _, err := os.Stat(filepath.Join(dir, "programs", id)); !os.IsNotExist(err) {
				t.Fatalf("storage left after delete: %v", err)
			}
			if _, err := h.Get(ctx, id); err == nil {
				t.Fatal("record left after delete")
			}
		})
	}
}

func storeFilterAll() store.ProgramFilter { return store.ProgramFilter{Limit: 10000} }

// buildRecord returns the record of build id from the Host's builds, or
// store.ErrNotFound.
func buildRecord(t *testing.T, h *Host, id string) (store.Build, error) {
	t.Helper()
	bs, err := h.Builds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.ID == id {
			return b, nil
		}
	}
	return store.Build{}, store.ErrNotFound
}
