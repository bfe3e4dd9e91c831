package host_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestAnswering: a Ready program whose WatcherAPI hangs is reported "not
// answering" from the first check it fails, stays Ready (its process
// runs), and is reported answering again from the first check it passes;
// a program that is not Ready has no report. The checks are bounded in
// time: a hung one gives up, and the Host's goroutines end with the test
// (the bubble checks).
func TestAnswering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hung atomic.Bool
		release := make(chan struct{})
		api := watcherAPI(nil)
		prog := fake.Script{API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hung.Load() {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			api.ServeHTTP(w, r)
		})}.Program()
		d := newFakeEngine(t, prog, fake.Hooks{})
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.AnswerEvery = 10 * time.Second })
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		if _, ok := h.Answering(id); ok {
			t.Fatal("a program not yet Ready has a report")
		}
		startProgram(t, h, id)
		settle(t, h, id, lifecycle.Ready)
		if a, ok := h.Answering(id); !ok || !a.Answering {
			t.Fatalf("a program that just became Ready: %+v %v", a, ok)
		}

		hung.Store(true)
		hungAt := time.Now()
		time.Sleep(20 * time.Second) // a check, and its 5 s timeout
		synctest.Wait()
		a, ok := h.Answering(id)
		if !ok || a.Answering || a.Since.Before(hungAt) || !strings.Contains(a.Problem, "deadline") {
			t.Fatalf("a hung WatcherAPI: %+v %v", a, ok)
		}
		if p := stateOf(t, h, id); p.State != lifecycle.Ready {
			t.Fatalf("a hung program: %s, want Ready", p.State)
		}
		since := a.Since
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if a, _ := h.Answering(id); a.Answering || a.Since != since {
			t.Fatalf("still hung, three checks on: %+v (since %v)", a, since)
		}

		hung.Store(false)
		close(release)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if a, _ := h.Answering(id); !a.Answering || !a.Since.After(since) || a.Problem != "" {
			t.Fatalf("answering again: %+v", a)
		}

		if _, err := h.Stop(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		settle(t, h, id, lifecycle.Stopped)
		if _, ok := h.Answering(id); ok {
			t.Fatal("a stopped program has a report")
		}
	})
}
