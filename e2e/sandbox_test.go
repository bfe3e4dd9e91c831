package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/driver/docker"
)

// TestSandbox looks at the sandbox from the inside, once per runtime: a
// probe program reports what it can write and reach. With network none it
// has only loopback and reaches nothing; granted outbound network it has a
// route out but still reaches neither the Host's API, nor a service of the
// machine listening on every interface (on any of the machine's
// addresses), nor another program. Then the probe crashes on
// request and the Host restarts it with growing delays, its /state intact.
//
// The dials are made by the program inside its sandbox; the test itself
// only talks to the Host on 127.0.0.1.
func TestSandbox(t *testing.T) { forEachRuntime(t, testSandbox) }

// probeReport is what the probe logs for a check (see testdata/probe).
type probeReport struct {
	Write        map[string]string `json:"write"`
	Dial         map[string]string `json:"dial"`
	Interfaces   []string          `json:"interfaces"`
	DefaultRoute bool              `json:"default_route"`
	UID          int               `json:"uid"`
	Error        string            `json:"error"`
}

// check sends the probe a check and waits for its report.
func (p *program) check(write, dial []string) probeReport {
	p.t.Helper()
	id := nonce()
	spec, _ := json.Marshal(map[string][]string{"write": write, "dial": dial})
	p.send("check " + id + " " + string(spec))
	line := p.waitLogContains(time.Time{}, "probe-result "+id+" ", time.Minute)
	_, js, _ := strings.Cut(line, "probe-result "+id+" ")
	var r probeReport
	if err := json.Unmarshal([]byte(js), &r); err != nil || r.Error != "" {
		p.t.Fatalf("%s: probe report %q: %v %s", p.name, js, err, r.Error)
	}
	return r
}

func testSandbox(t *testing.T, rt string) {
	h := startHost(t, rt)
	alice, bob := h.user("alice"), h.user("bob")
	files := readSource(t, "testdata/probe") // one build shared by the three
	yes := true
	none := h.deploy(t, alice, "probe-none", client.SourceRequest{SrcFiles: files})
	egress := h.deploy(t, alice, "probe-egress", client.SourceRequest{SrcFiles: files, Network: &yes})
	peer := h.deploy(t, bob, "probe-peer", client.SourceRequest{SrcFiles: files, Network: &yes})
	for _, p := range []*program{none, egress, peer} {
		p.waitState("Ready", 3*time.Minute)
	}

	// Where the Host's API could be reached from a container if it
	// listened on more than loopback: every address of this machine. And a
	// service of the machine that does listen on every interface (as an
	// operator's might): the host must drop what the sandbox sends it.
	_, port, _ := net.SplitHostPort(h.addr)
	wide, accepted := wideListener(t)
	targets := []string{"127.0.0.1:" + port} // inside: the sandbox's own loopback
	for _, a := range hostAddrs(t) {
		targets = append(targets, net.JoinHostPort(a, port), net.JoinHostPort(a, wide))
	}
	// Another program, listening on all its interfaces.
	peer.ask("listen 9000", "probe-listen 9000: ok")
	peerAddr := net.JoinHostPort(egressIP(t, h, peer), "9000")
	writes := []string{"/probe.txt", "/state/probe.txt"}

	for _, tc := range []struct {
		p       *program
		network bool
	}{{none, false}, {egress, true}} {
		r := tc.p.check(writes, append(slices.Clone(targets), peerAddr))
		t.Logf("%s: %+v", tc.p.name, r)
		if r.Write["/probe.txt"] == "ok" {
			t.Errorf("%s: wrote to / (the root file system must be read-only)", tc.p.name)
		}
		if r.Write["/state/probe.txt"] != "ok" {
			t.Errorf("%s: cannot write /state: %s", tc.p.name, r.Write["/state/probe.txt"])
		}
		if r.UID == 0 {
			t.Errorf("%s: runs as root", tc.p.name)
		}
		for addr, res := range r.Dial {
			if res == "ok" {
				t.Errorf("%s reached %s", tc.p.name, addr)
			}
		}
		if len(r.Dial) != len(targets)+1 {
			t.Errorf("%s: %d dial results, want %d", tc.p.name, len(r.Dial), len(targets)+1)
		}
		if tc.network {
			// The grant is real: an interface besides loopback, a route out.
			if len(r.Interfaces) < 2 || !r.DefaultRoute {
				t.Errorf("%s: granted network but has interfaces %v, default route %v", tc.p.name, r.Interfaces, r.DefaultRoute)
			}
		} else if !slices.Equal(r.Interfaces, []string{"lo"}) || r.DefaultRoute {
			t.Errorf("%s: network none but has interfaces %v, default route %v", tc.p.name, r.Interfaces, r.DefaultRoute)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the machine's service on all interfaces accepted %d connections from sandboxes", n)
	}
	// Control: the peer's listener works; the egress probe's failure to
	// reach it is the network's doing.
	if r := peer.check(nil, []string{peerAddr}); r.Dial[peerAddr] != "ok" {
		t.Errorf("the peer cannot reach its own listener %s: %s", peerAddr, r.Dial[peerAddr])
	}

	checkCrashLoop(t, none)
}

// wideListener listens on every interface of the machine (port 0: any
// free one) and counts the connections it accepts.
func wideListener(t *testing.T) (port string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, accepted
}

// hostAddrs returns this machine's non-loopback IPv4 addresses: its own
// interfaces, the engine's bridges and the egress network's gateway.
func hostAddrs(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	if len(out) == 0 {
		t.Fatal("no non-loopback address on this machine")
	}
	return out
}

// egressIP is the program's address on the Host's egress network.
func egressIP(t *testing.T, h *host, p *program) string {
	t.Helper()
	c, err := h.engine.Client().ContainerInspect(context.Background(), p.get().ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	n := c.NetworkSettings.Networks[docker.EgressNetwork]
	if n == nil || n.IPAddress == "" {
		t.Fatalf("%s is not on %s: %v", p.name, docker.EgressNetwork, c.NetworkSettings.Networks)
	}
	return n.IPAddress
}

// checkCrashLoop makes the probe exit with code 3 twice: the Host puts it in
// Error and restarts it after a delay that grows (1 s, then 2 s, less up to
// 20% jitter), and the restarted program finds its /state.
func checkCrashLoop(t *testing.T, p *program) {
	t.Helper()
	p.waitLogContains(time.Time{}, "probe-start 1", time.Minute)
	for i := 2; i <= 3; i++ {
		p.send("exit 3")
		p.waitLogContains(time.Time{}, fmt.Sprintf("probe-start %d", i), time.Minute) // counted in /state
		p.waitState("Ready", time.Minute)
	}
	pr := p.get()
	if pr.RestartCount < 2 {
		t.Errorf("%s after two crashes: restart_count %d", p.name, pr.RestartCount)
	}
	// The history shows each crash and the delay before the restart.
	delays := restartDelays(t, p, func(reason string) bool { return strings.Contains(reason, "code 3") })
	t.Logf("restart delays after crashes: %v", delays)
	if len(delays) != 2 || delays[0] < 800*time.Millisecond || delays[1] < 1600*time.Millisecond {
		t.Errorf("restart delays %v, want two, at least 0.8s then 1.6s", delays)
	}
}

// restartDelays reads a program's history: for each crash (Ready to
// Error, whose reason must satisfy reasonOK) the time until its restart
// began.
func restartDelays(t *testing.T, p *program, reasonOK func(string) bool) []time.Duration {
	t.Helper()
	type transition struct {
		From, To, Reason string
		At               time.Time
	}
	var hist struct {
		Transitions []transition `json:"transitions"`
	}
	req, _ := http.NewRequest(http.MethodGet, p.h.url()+"/programs/"+p.id+"/history", nil)
	code, m := p.do(req)
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, &hist); code != http.StatusOK || err != nil {
		t.Fatalf("history: %d %v", code, err)
	}
	tr := hist.Transitions
	slices.SortFunc(tr, func(a, b transition) int { return a.At.Compare(b.At) })
	var delays []time.Duration
	for i, x := range tr {
		if x.From != "Ready" || x.To != "Error" {
			continue
		}
		if !reasonOK(x.Reason) {
			t.Errorf("%s: crash reason %q", p.name, x.Reason)
		}
		for _, y := range tr[i+1:] {
			if y.From == "Error" && y.To == "Starting" {
				delays = append(delays, y.At.Sub(x.At))
				break
			}
		}
	}
	return delays
}
