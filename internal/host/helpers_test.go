package host_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// The Host's tests through its methods run it on the in-memory engine
// (package fake, opened by package hosttest), inside testing/synctest
// bubbles: time is the bubble's (timeouts, backoffs and the programs'
// ticks pass at once, exactly), a call a test holds in a hook is durably
// blocked, and the bubble's end fails the test if any goroutine of the
// Host or the engine is still alive. The tests whose subject is the real
// engine or sandbox are in package enginetest.

// settle waits, in the bubble's time, until the program is in want and
// nothing more is in flight for it (no build, start, probe, stop or timer
// it waits for), and returns its record. Polling in a bubble costs no real
// time and is deterministic.
func settle(t *testing.T, h *host.Host, id string, want lifecycle.State) store.Program {
	t.Helper()
	deadline := time.Now().Add(time.Hour)
	for {
		synctest.Wait()
		if p, err := h.Supervised(id); err == nil && p.State == want && p.Waiting == 0 {
			return stateOf(t, h, id)
		}
		if time.Now().After(deadline) {
			trs, _ := h.Transitions(context.Background(), id, 60)
			for _, tr := range trs {
				t.Logf("%s %s -> %s: %s", tr.At.Format("15:04:05.000"), tr.From, tr.To, tr.Reason)
			}
			t.Fatalf("program %s: %+v after an hour, want %s", id, stateOf(t, h, id), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stateOf is the program's record.
func stateOf(t *testing.T, h *host.Host, id string) store.Program {
	t.Helper()
	p, err := h.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// createProgram creates a program and returns its id.
func createProgram(t *testing.T, h *host.Host, req host.CreateRequest) string {
	t.Helper()
	p, err := h.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// startProgram starts a program, failing the test if it is refused.
func startProgram(t *testing.T, h *host.Host, id string) {
	t.Helper()
	if _, err := h.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// dockerfileProgram is a program built from a Dockerfile (the fake engine
// builds it; what it runs is the engine's Program).
func dockerfileProgram(user, variant string) host.CreateRequest {
	return hosttest.AppProgram(user, "program "+variant)
}

// watcherAPI answers the readiness probe as a hersh program does: 200 on
// /watcher/ready once ready says so (nil: at once), 503 before.
func watcherAPI(ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/watcher/ready", func(w http.ResponseWriter, r *http.Request) {
		if ready != nil && !ready() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready")
	})
	mux.HandleFunc("/watcher/status", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"isRunning":true}`)
	})
	return mux
}

// noContainers fails unless the engine holds no container of the program,
// in any state.
func noContainers(t *testing.T, d driver.Driver, id string) {
	t.Helper()
	for _, c := range hosttest.ContainersOf(t, d, id) {
		t.Errorf("container %.12s (%s) of %s left: running %v", c.ID, c.Name, id, c.Running)
	}
}

// imageExists reports whether the engine has the image tagged ref.
func imageExists(t *testing.T, d driver.Driver, ref string) bool {
	t.Helper()
	ok, err := d.ImageExists(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func allPrograms() store.ProgramFilter { return store.ProgramFilter{Limit: 10000} }

// buildRecord returns the record of build id from the Host's builds, or
// store.ErrNotFound.
func buildRecord(t *testing.T, h *host.Host, id string) (store.Build, error) {
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

// concurrency counts the calls inside a section at once and the most
// there ever were: a bound's tests hold calls in an engine hook with it.
type concurrency struct {
	mu        sync.Mutex
	now, most int
}

// enter counts a call in; the returned function counts it out.
func (c *concurrency) enter() (leave func()) {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}
}

// read returns the calls inside now and the most there were.
func (c *concurrency) read() (now, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now, c.most
}
