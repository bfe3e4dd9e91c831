package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
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
	}
	if pp, err := startPorts(nil, ""); pp != nil || err != nil {
		t.Fatalf("ports must be off by default: %v %v", pp, err)
	}
}

// dialFails waits until the port refuses connections (a release closes
// the listener just after forgetting the port).
func dialFails(t *testing.T, port int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("port %d still accepts connections", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portGet GETs path on 127.0.0.1:port with token and returns the status
// and the decoded JSON body.
func portGet(t *testing.T, port int, path, token string) (int, map[string]any) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
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

// TestProxyPorts: which program gets which port, when a port opens and
// closes, and that it follows restarts. (Who may use a port is
// TestProxyPortAccess's.)
func TestProxyPorts(t *testing.T) {
	const low, high = 19400, 19402
	for p := low; p <= high; p++ {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
			t.Fatalf("port %d is in use on this machine: %v", p, err)
		} else {
			ln.Close()
		}
	}
	ports := fmt.Sprintf("%d-%d", low, high)
	e := newEnvWith(t, Options{PortRange: ports})
	h := e.h
	port := func(id string) int { return e.api.s.ports.port(id) }
	ctx := context.Background()

	// Four programs from one source (one build): three get the three
	// ports, the fourth runs without one.
	ids := make([]string, 4)
	for i := range ids {
		p, err := h.Create(ctx, host.CreateRequest{UserID: "alice", Files: hosttest.CounterSource(0)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = p.ID
		if port(p.ID) != 0 {
			t.Fatal("a created program has a port")
		}
	}
	// The first alone, so that it gets the lowest port.
	a := ids[0]
	if _, err := h.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	hosttest.WaitState(t, h, a, lifecycle.Ready, 3*time.Minute)
	if got := waitPort(t, port, a, func(p int) bool { return p != 0 }); got != low {
		t.Fatalf("first program's port %d, want %d", got, low)
	}
	if code, st := portGet(t, low, "/watcher/status", e.tokA); code != 200 || st["isRunning"] != true {
		t.Fatalf("status through the port: %d %v", code, st)
	}
	if code, _ := portGet(t, low, "/programs", e.tokA); code != 404 {
		t.Fatalf("non-watcher path answered %d, want 404", code)
	}

	// The rest together.
	for _, id := range ids[1:] {
		if _, err := h.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids[1:] {
		hosttest.WaitState(t, h, id, lifecycle.Ready, 3*time.Minute)
	}
	var seen map[int]string
	var without string
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen, without = map[int]string{}, ""
		for _, id := range ids {
			p := port(id)
			if p == 0 {
				without = id
				continue
			}
			if p < low || p > high || seen[p] != "" {
				t.Fatalf("port %d of %s: out of range or shared with %s", p, id, seen[p])
			}
			seen[p] = id
		}
		if len(seen) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) != 3 || without == "" {
		t.Fatalf("ports %v; want 3 programs with distinct ports and one without", seen)
	}
	for p := range seen {
		if code, _ := portGet(t, p, "/watcher/status", e.tokA); code != 200 {
			t.Fatalf("port %d answered %d", p, code)
		}
	}

	// A restart keeps the port and follows the new container.
	before, _ := h.Get(ctx, a)
	if _, err := h.Restart(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitNewContainer(t, h, a, before.ContainerID)
	if got := port(a); got != low {
		t.Fatalf("port after restart %d, want %d", got, low)
	}
	if code, st := portGet(t, low, "/watcher/status", e.tokA); code != 200 || st["isRunning"] != true {
		t.Fatalf("status after restart: %d %v", code, st)
	}

	// Stop releases.
	if _, err := h.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitPort(t, port, a, func(p int) bool { return p == 0 })
	dialFails(t, low)

	// Delete releases.
	b := seen[low+1]
	if b == "" {
		b = seen[low+2]
	}
	bport := port(b)
	if err := h.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := port(b); got != 0 {
		t.Fatalf("deleted program keeps port %d", got)
	}
	dialFails(t, bport)

	// Closing the API closes the rest; a new API gives the programs that
	// are Ready then ports (now there are enough).
	var rest []int
	var running []string
	for _, id := range ids {
		if id == a || id == b {
			continue
		}
		running = append(running, id)
		if p := port(id); p != 0 {
			rest = append(rest, p)
		}
	}
	e.api.Close()
	for _, p := range rest {
		dialFails(t, p)
	}
	again, err := New(h, Options{DataDir: e.dir, PortRange: ports})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	for _, id := range running {
		p := waitPort(t, again.s.ports.port, id, func(p int) bool { return p != 0 })
		if code, _ := portGet(t, p, "/watcher/status", e.tokA); code != 200 {
			t.Fatalf("%s: port %d answered %d", id, p, code)
		}
	}
}

// waitPort polls the program's proxy port until ok (the port follows the
// saved state by a moment: the subscriber runs after the save).
func waitPort(t *testing.T, port func(string) int, id string, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := port(id)
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
func waitNewContainer(t *testing.T, h *host.Host, id, old string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := h.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if p.State == lifecycle.Ready && p.ContainerID != "" && p.ContainerID != old {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new Ready container for %s: %s %s", id, p.State, strings.TrimSpace(p.ErrorMsg))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
