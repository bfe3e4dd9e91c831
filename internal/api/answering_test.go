package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
)

// TestProgramViewAnswering: a Ready program's view says whether its
// WatcherAPI answered the Host's last check, and so do the metrics; once it
// answers "not ready", both say it is not answering.
func TestProgramViewAnswering(t *testing.T) {
	var stuck atomic.Bool
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/watcher/ready" && stuck.Load() {
			http.Error(w, "watcher stuck", http.StatusServiceUnavailable)
			return
		}
		statusHandler().ServeHTTP(w, r)
	})
	e := newFakeProxyEnv(t, fake.Script{API: api}.Program(), Options{}, func(o *host.Options) { o.AnswerEvery = 20 * time.Millisecond })
	id := e.deploy("alice")
	get := func(path, tok string) []byte {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	view := func() programView {
		var v programView
		if err := json.Unmarshal(get("/programs/"+id, e.alice), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := view(); v.WatcherAPI == nil || !v.WatcherAPI.Answering {
		t.Fatalf("a Ready program: %+v", v.WatcherAPI)
	}
	if m := string(get("/metrics", e.admin)); !strings.Contains(m, `hershy_program_watcher_answering{program="`+id+`"} 1`) {
		t.Error("the metric does not say it answers")
	}
	stuck.Store(true)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v := view()
		if v.WatcherAPI != nil && !v.WatcherAPI.Answering {
			if v.State != "Ready" || !strings.Contains(v.WatcherAPI.Problem, "503") {
				t.Errorf("not answering: state %s, %+v", v.State, v.WatcherAPI)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reported not answering: %+v", v.WatcherAPI)
		}
	}
	if m := string(get("/metrics", e.admin)); !strings.Contains(m, `hershy_program_watcher_answering{program="`+id+`"} 0`) {
		t.Error("the metric does not say it stopped answering")
	}
}
