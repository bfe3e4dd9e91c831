package host

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/testenv"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

func TestParsePortRange(t *testing.T) {
	for _, c := range []struct {
		in        string
		low, high int
		ok        bool
	}{
		{"9000-9999", 9000, 9999, true},
		{" 1024 - 65535 ", 1024, 65535, true},
		{"9000-9000", 9000, 9000, true},
		{"9000", 0, 0, false},
		{"9999-9000", 0, 0, false},
		{"80-9000", 0, 0, false},
		{"9000-70000", 0, 0, false},
		{"a-b", 0, 0, false},
		{"-9000", 0, 0, false},
		{"9000-", 0, 0, false},
	} {
		low, high, err := parsePortRange(c.in)
		if (err == nil) != c.ok || low != c.low || high != c.high {
			t.Errorf("parsePortRange(%q) = %d, %d, %v", c.in, low, high, err)
		}
		_, err = Options{DataDir: t.TempDir(), PortRange: c.in}.withDefaults()
		if (err == nil) != c.ok {
			t.Errorf("withDefaults with PortRange %q: %v", c.in, err)
		}
	}
	if o, err := (Options{DataDir: t.TempDir()}).withDefaults(); err != nil || o.PortRange != "" {
		t.Fatalf("ports must be off by default: %q %v", o.PortRange, err)
	}
}

// TestPortsServeWhatIsInstalled: a port answers 503 in the API's error
// shape until a PortServer is installed (and after it is removed), then
// hands each request to it with its program's id. No engine needed.
func TestPortsServeWhatIsInstalled(t *testing.T) {
	h := &Host{}
	var err error
	if h.ports, err = newPortProxies(h, "9000-9001"); err != nil {
		t.Fatal(err)
	}
	get := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ports.handler("p").ServeHTTP(w, httptest.NewRequest("GET", "/watcher/status", nil))
		return w
	}
	notServed := func(when string) {
		w := get()
		var body struct {
			Error   string `json:"error"`
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Content-Type") != "application/json" ||
			json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Code != 503 || body.Error == "" || body.Message == "" {
			t.Errorf("%s: %d %q %s", when, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	notServed("before ServePorts")
	h.ServePorts(func(w http.ResponseWriter, r *http.Request, id string) {
		fmt.Fprintf(w, "%s %s", id, r.URL.Path)
	})
	if w := get(); w.Code != 200 || w.Body.String() != "p /watcher/status" {
		t.Errorf("served: %d %s", w.Code, w.Body)
	}
	h.ServePorts(nil)
	notServed("after ServePorts(nil)")
	(&Host{}).ServePorts(func(http.ResponseWriter, *http.Request, string) {}) // ports off: nothing to do
}

// forwardPorts installs a PortServer that forwards to the program's
// WatcherAPI without any check: the Host's side of the ports (which port,
// when, following restarts) is tested here, the API's check in package api.
func forwardPorts(h *Host) {
	h.ServePorts(func(w http.ResponseWriter, r *http.Request, id string) {
		if !strings.HasPrefix(r.URL.Path, "/watcher/") {
			portError(w, http.StatusNotFound, "only /watcher/ paths")
			return
		}
		base, rt, err := h.WatcherAPI(id)
		if err != nil {
			portError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		target, _ := url.Parse(base)
		(&httputil.ReverseProxy{Transport: rt, Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}).ServeHTTP(w, r)
	})
}

func openHostPorts(t *testing.T, dir, rt string, d driver.Driver, ports string) *Host {
	t.Helper()
	h, err := Open(context.Background(), Options{
		DataDir: dir, Runtime: rt, StartTimeout: 60 * time.Second, StopGrace: 5 * time.Second,
		Backoff:   lifecycle.Backoff{Base: time.Second, Max: 4 * time.Second, HealthyReset: time.Hour},
		Build:     testenv.GoCaches(t),
		PortRange: ports,
	}, d)
	if err != nil {
		t.Fatal(err)
	}
	forwardPorts(h)
	return h
}

// portGet GETs path on 127.0.0.1:port and returns the status and the
// decoded JSON body.
func portGet(t *testing.T, port int, path string) (int, map[string]any) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatalf("GET :%d%s: %v", port, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET :%d%s: %s, body not JSON: %v", port, path, resp.Status, err)
	}
	return resp.StatusCode, out
}

func dialFails(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("port %d still accepts connections", port)
	}
}

func TestProxyPortsAgainstTheEngine(t *testing.T) {
	const low, high = 19400, 19402
	for p := low; p <= high; p++ {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
			t.Skipf("port %d is in use on this machine: %v", p, err)
		} else {
			ln.Close()
		}
	}
	rt := driver.RuntimeRunc
	d := testenv.Engine(t, rt)
	dir := t.TempDir()
	ports := fmt.Sprintf("%d-%d", low, high)
	h := openHostPorts(t, dir, rt, d, ports)
	closed := false
	defer func() {
		if !closed {
			h.Close()
		}
	}()
	ctx := context.Background()

	// Four programs from one source (one build): three get the three
	// ports, the fourth runs without one.
	ids := make([]string, 4)
	for i := range ids {
		p, err := h.Create(ctx, CreateRequest{UserID: "alice", Files: counterProgram(t)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = p.ID
		if h.ProxyPort(p.ID) != 0 {
			t.Fatal("a created program has a port")
		}
	}
	// The first alone, so that it gets the lowest port.
	a := ids[0]
	if _, err := h.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitState(t, h, a, lifecycle.Ready, 3*time.Minute)
	if got := waitPort(t, h, a, func(p int) bool { return p != 0 }); got != low {
		t.Fatalf("first program's port %d, want %d", got, low)
	}
	if code, st := portGet(t, low, "/watcher/status"); code != 200 || st["isRunning"] != true {
		t.Fatalf("status through the port: %d %v", code, st)
	}
	if code, _ := portGet(t, low, "/programs"); code != 404 {
		t.Fatalf("non-watcher path answered %d, want 404", code)
	}

	// The rest together.
	for _, id := range ids[1:] {
		if _, err := h.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids[1:] {
		waitState(t, h, id, lifecycle.Ready, 2*time.Minute)
	}
	var seen map[int]string
	var without string
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen, without = map[int]string{}, ""
		for _, id := range ids {
			port := h.ProxyPort(id)
			if port == 0 {
				without = id
				continue
			}
			if port < low || port > high || seen[port] != "" {
				t.Fatalf("port %d of %s: out of range or shared with %s", port, id, seen[port])
			}
			seen[port] = id
		}
		if len(seen) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) != 3 || without == "" {
		t.Fatalf("ports %v; want 3 programs with distinct ports and one without", seen)
	}
	for port := range seen {
		if code, _ := portGet(t, port, "/watcher/status"); code != 200 {
			t.Fatalf("port %d answered %d", port, code)
		}
	}
	if p, _ := h.Get(ctx, without); p.State != string(lifecycle.Ready) {
		t.Fatalf("the program without a port is %s, want Ready", p.State)
	}

	// A restart keeps the port and follows the new container.
	before, _ := h.Get(ctx, a)
	if _, err := h.Restart(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitNewContainer(t, h, a, before.ContainerID)
	if got := h.ProxyPort(a); got != low {
		t.Fatalf("port after restart %d, want %d", got, low)
	}
	if code, st := portGet(t, low, "/watcher/status"); code != 200 || st["isRunning"] != true {
		t.Fatalf("status after restart: %d %v", code, st)
	}

	// Stop releases.
	if _, err := h.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitState(t, h, a, lifecycle.Stopped, time.Minute)
	waitPort(t, h, a, func(p int) bool { return p == 0 })
	dialFails(t, low)

	// Delete releases.
	b := seen[low+1]
	if b == "" {
		b = seen[low+2]
	}
	bport := h.ProxyPort(b)
	if err := h.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := h.ProxyPort(b); got != 0 {
		t.Fatalf("deleted program keeps port %d", got)
	}
	dialFails(t, bport)

	// Close closes the rest; a new Host gives the re-adopted Ready
	// programs ports (now there are enough).
	var rest []int
	var running []string
	for _, id := range ids {
		if id == a || id == b {
			continue
		}
		running = append(running, id)
		if p := h.ProxyPort(id); p != 0 {
			rest = append(rest, p)
		}
	}
	closed = true
	h.Close()
	for _, p := range rest {
		dialFails(t, p)
	}
	h = openHostPorts(t, dir, rt, d, ports)
	closed = false
	for _, id := range running {
		waitState(t, h, id, lifecycle.Ready, 10*time.Second)
		port := waitPort(t, h, id, func(p int) bool { return p != 0 })
		if code, _ := portGet(t, port, "/watcher/status"); code != 200 {
			t.Fatalf("re-adopted %s: port %d answered %d", id, port, code)
		}
	}
	for _, id := range append(running, a) {
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// waitPort polls the program's proxy port until ok (the port follows the
// saved state by a moment: the observer runs after the save).
func waitPort(t *testing.T, h *Host, id string, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := h.ProxyPort(id)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %s: proxy port %d", id, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitNewContainer waits until the program is Ready in a container other
// than old.
func waitNewContainer(t *testing.T, h *Host, id, old string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := h.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if p.State == string(lifecycle.Ready) && p.ContainerID != "" && p.ContainerID != old {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new Ready container for %s: %s %s", id, p.State, strings.TrimSpace(p.ErrorMsg))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
