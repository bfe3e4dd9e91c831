package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/stats"
)

// quickStats samples every 100 ms (the API's tests run in real time).
func quickStats(o *host.Options) {
	o.Stats = stats.Policy{FineStep: 100 * time.Millisecond, FineKeep: time.Hour, CoarseStep: 500 * time.Millisecond, CoarseKeep: 24 * time.Hour}
}

// sampleKeys are the fields of a sample, as the dashboard reads them.
var sampleKeys = []string{"at", "cpu_percent", "memory_bytes", "memory_limit_bytes", "net_rx_bytes", "net_tx_bytes", "pids", "restarts", "state_bytes_limit", "state_bytes_used"}

// keysOf is a JSON object's keys, sorted.
func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// runningSeed creates and starts a program of user tok and waits until it
// is Ready; it returns its id and container.
func (e *env) runningSeed(tok string) (string, string) {
	e.t.Helper()
	b, _ := json.Marshal(map[string]any{"src_files": hosttest.SeedSource()})
	var created map[string]any
	e.do("POST", "/programs", tok, string(b), 201, &created)
	id := created["program_id"].(string)
	e.do("POST", "/programs/"+id+"/start", tok, "", 200, nil)
	return id, e.waitReady(id, tok).ContainerID
}

// TestStatsAPI: GET /programs/{id}/stats answers the agreed shape (the
// dashboard codes against it) for the owner and the admin, a 404 for
// another user and an unknown program, a 400 naming the parameter for a
// bad since or resolution.
func TestStatsAPI(t *testing.T) {
	e := newEnv(t, quickStats)
	id, cid := e.runningSeed(e.tokA)
	if err := e.d.SetUsage(cid, fake.Usage{CPU: 3 * time.Second, Memory: 5 << 20, Pids: 7, NetRxBytes: 11, NetTxBytes: 13}); err != nil {
		t.Fatal(err)
	}
	path := "/programs/" + id + "/stats"
	var body map[string]any
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		e.do("GET", path, e.tokA, "", 200, &body)
		// Three samples, the latest after the usage was set.
		if ss := body["samples"].([]any); len(ss) >= 3 && ss[len(ss)-1].(map[string]any)["memory_bytes"] == float64(5<<20) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no samples in a minute: %v", body)
		}
	}
	if got := keysOf(body); !slices.Equal(got, []string{"program_id", "resolution", "samples", "step_seconds"}) {
		t.Errorf("answer keys %v", got)
	}
	if body["program_id"] != id || body["resolution"] != "fine" || body["step_seconds"] != 0.1 {
		t.Errorf("answer %v", body)
	}
	var prev time.Time
	for i, x := range body["samples"].([]any) {
		s := x.(map[string]any)
		if got := keysOf(s); !slices.Equal(got, sampleKeys) {
			t.Fatalf("sample keys %v, want %v", got, sampleKeys)
		}
		at, err := time.Parse(time.RFC3339Nano, s["at"].(string))
		if err != nil || !at.After(prev) || !strings.HasSuffix(s["at"].(string), "Z") {
			t.Errorf("sample %d at %v (%v), after %v: want UTC, oldest first", i, s["at"], err, prev)
		}
		prev = at
		if s["memory_limit_bytes"].(float64) != float64(host.DefaultLimits.MemoryBytes) || s["cpu_percent"].(float64) < 0 {
			t.Errorf("sample %d: %v", i, s)
		}
	}
	last := body["samples"].([]any)[len(body["samples"].([]any))-1].(map[string]any)
	if last["memory_bytes"] != float64(5<<20) || last["pids"] != 7.0 || last["net_rx_bytes"] != 11.0 || last["net_tx_bytes"] != 13.0 || last["restarts"] != 0.0 {
		t.Errorf("the latest sample %v, want the scripted usage", last)
	}

	// The parameters.
	var sb statsBody
	for q, want := range map[string]stats.Resolution{
		"":                   stats.Fine,
		"?resolution=coarse": stats.Coarse,
		"?since=1h":          stats.Fine,
		"?since=90m":         stats.Coarse,
		"?since=" + url.QueryEscape(time.Now().Add(-10*time.Second).UTC().Format(time.RFC3339)): stats.Fine,
		"?since=10s&resolution=coarse": stats.Coarse,
	} {
		e.do("GET", path+q, e.tokA, "", 200, &sb)
		if sb.Resolution != want || sb.ProgramID != id || sb.Samples == nil {
			t.Errorf("%s: resolution %s, %d samples; want %s", q, sb.Resolution, len(sb.Samples), want)
		}
		if want == stats.Coarse && sb.StepSeconds != 0.5 {
			t.Errorf("%s: step %v s, want 0.5", q, sb.StepSeconds)
		}
	}
	e.do("GET", path+"?since="+url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), e.tokA, "", 200, &sb)
	if len(sb.Samples) != 0 {
		t.Errorf("samples since an hour from now: %d", len(sb.Samples))
	}

	// Who may read it, and bad requests.
	e.do("GET", path, e.admin, "", 200, &sb)
	for name, c := range map[string]struct {
		path, tok string
		code      int
		says      string
	}{
		"another user":          {path, e.tokB, 404, "not found"},
		"an unknown program":    {"/programs/p-nosuchprogram/stats", e.tokA, 404, "not found"},
		"no token":              {path, "", 401, ""},
		"since not a time":      {path + "?since=yesterday", e.tokA, 400, "since"},
		"since negative":        {path + "?since=-1h", e.tokA, 400, "since"},
		"since zero":            {path + "?since=0s", e.tokA, 400, "since"},
		"since a bad date":      {path + "?since=2026-13-01T00:00:00Z", e.tokA, 400, "since"},
		"an unknown resolution": {path + "?resolution=raw", e.tokA, 400, "resolution"},
		"a bad one for bob too": {path + "?since=yesterday", e.tokB, 404, "not found"},
	} {
		resp, b := e.req("GET", c.path, c.tok, "")
		checkError(t, name, resp, b, c.code)
		if !strings.Contains(string(b), c.says) {
			t.Errorf("%s: %s does not say %q", name, b, c.says)
		}
	}
}

// TestStatsEvents: each new sample is a "stats" event ({program_id,
// sample}, the sample as GET /programs/{id}/stats shows it) on the
// owner's event stream, never on another user's.
func TestStatsEvents(t *testing.T) {
	e := newEnv(t, quickStats)
	alices, _ := e.runningSeed(e.tokA)
	bobs, _ := e.runningSeed(e.tokB)

	// The owner's stream, read raw for the exact shape.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var data map[string]any
	for kind := ""; sc.Scan(); {
		line := sc.Text()
		if k, ok := strings.CutPrefix(line, "event: "); ok {
			kind = k
			continue
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok && kind == "stats" {
			if err := json.Unmarshal([]byte(d), &data); err != nil {
				t.Fatalf("stats event %q: %v", d, err)
			}
			break
		}
	}
	if data == nil {
		t.Fatalf("no stats event: %v", sc.Err())
	}
	if keysOf(data) == nil || !slices.Equal(keysOf(data), []string{"program_id", "sample"}) || data["program_id"] != alices {
		t.Fatalf("stats event %v", data)
	}
	if got := keysOf(data["sample"].(map[string]any)); !slices.Equal(got, sampleKeys) {
		t.Errorf("the event's sample keys %v, want %v", got, sampleKeys)
	}

	// Bob's stream: his own program's samples, none of alice's, over
	// several rounds.
	bob := e.events(e.tokB, client.EventOptions{})
	bob.snapshot()
	for own := 0; own < 5; {
		x := bob.next(30 * time.Second)
		if x.Kind != "stats" {
			continue
		}
		if x.ProgramID != bobs || x.Stats == nil || x.Stats.At.IsZero() {
			t.Fatalf("bob's stream: %+v", x)
		}
		own++
	}
}

// TestStatsMetrics: /metrics has each running program's latest reading
// with its label, and a deleted program's series disappear.
func TestStatsMetrics(t *testing.T) {
	e := newEnv(t, quickStats)
	id, cid := e.runningSeed(e.tokA)
	if err := e.d.SetUsage(cid, fake.Usage{CPU: 3 * time.Second, Memory: 5 << 20, Pids: 7, NetRxBytes: 11, NetTxBytes: 13}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`hershy_program_cpu_seconds_total{program="` + id + `"} 3`,
		`hershy_program_memory_bytes{program="` + id + `"} 5.24288e+06`,
		`hershy_program_memory_limit_bytes{program="` + id + `"} 2.68435456e+08`,
		`hershy_program_pids{program="` + id + `"} 7`,
		`hershy_program_network_receive_bytes_total{program="` + id + `"} 11`,
		`hershy_program_network_transmit_bytes_total{program="` + id + `"} 13`,
	}
	metrics := func() string {
		_, b := e.req("GET", "/metrics", e.admin, "")
		return string(b)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		m := metrics()
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return strings.Contains(m, w) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %v", missing)
		}
	}
	e.do("DELETE", "/programs/"+id, e.tokA, "", 200, nil)
	if m := metrics(); strings.Contains(m, `program="`+id+`"`) {
		t.Errorf("a deleted program's series are left:\n%s", grepLines(m, id))
	}
}

// grepLines is the lines of s that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
