package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// envEngineRestart runs TestEngineRestart. It restarts dockerd, which
// every other engine test running at the same time would feel, so
// scripts/test.sh runs it alone, after the rest of the suite.
const envEngineRestart = "HERSHY_ENGINE_RESTART"

// TestEngineRestart restarts dockerd (live-restore on, as
// scripts/setup-engine.sh sets it) while programs run and a build is under
// way:
//
//   - a running program keeps running through it: same container, no
//     restart, its counter goes on;
//   - a program whose process dies while the engine is down is restarted
//     once the engine is back (the Host catches up on the exit it missed);
//   - the build the restart cut short is built again once the engine
//     answers, and its log says why;
//   - the Host says the engine is down while it is, and is healthy again
//     after.
func TestEngineRestart(t *testing.T) {
	if os.Getenv(envEngineRestart) == "" {
		t.Skipf("restarts dockerd: run alone with %s=1 (scripts/test.sh does, after the rest of the suite)", envEngineRestart)
	}
	forEachRuntime(t, testEngineRestart)
}

func testEngineRestart(t *testing.T, rt string) {
	h := startHost(t, rt)
	alice := h.user("alice")
	src := readSource(t, filepath.Join(examplesDir, "simple-counter"))
	steady := h.deploy(t, alice, "steady", client.SourceRequest{SrcFiles: src})
	victim := h.deploy(t, alice, "victim", client.SourceRequest{SrcFiles: src})
	steadyBefore := steady.waitState("Ready", 3*time.Minute)
	victimBefore := victim.waitState("Ready", time.Minute)
	counted := numberAfter(t, steady.ask("status", "status: counter is"), "counter is ")

	// A build that takes a few seconds, so the restart falls inside it.
	slow := readSource(t, filepath.Join(examplesDir, "simple-counter"))
	slow["slow.go"] = slowGo(8000)
	building := h.deploy(t, alice, "building", client.SourceRequest{SrcFiles: slow})
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(building.buildLog(), "==> go build (") {
		if time.Now().After(deadline) {
			t.Fatalf("the build did not start:\n%s", building.buildLog())
		}
		time.Sleep(50 * time.Millisecond)
	}

	steadyPid, victimPid := containerPid(t, steadyBefore), containerPid(t, victimBefore)
	late := newHost(t, rt, nil, nil) // started while the engine is down
	pid := stopEngine(t)
	t.Logf("dockerd (%d) stopped", pid)
	// The engine is down: the Host says so.
	waitHealth(t, h, http.StatusServiceUnavailable)
	// Programs run on without it; one of them dies meanwhile.
	for _, pid := range []int{steadyPid, victimPid} {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("a program's container process (%d) died with the engine", pid)
		}
	}
	if err := syscall.Kill(victimPid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the victim's process: %v", err)
	}
	// A Host started now stays up and says what it waits for.
	late.launch()
	waitStarting(t, late)
	startEngine(t)
	waitHealth(t, h, http.StatusOK)
	// The late Host opens once the engine answers, and works.
	late.awaitHealthy()
	late.deploy(t, late.user("carol"), "late", client.SourceRequest{SrcFiles: src}).waitState("Ready", 3*time.Minute)

	// The steady program was never touched.
	after := steady.waitState("Ready", time.Minute)
	if after.ContainerID != steadyBefore.ContainerID || after.RestartCount != steadyBefore.RestartCount {
		t.Errorf("steady: container %s restarts %d after the engine's restart, was %s %d",
			after.ContainerID, after.RestartCount, steadyBefore.ContainerID, steadyBefore.RestartCount)
	}
	if n := numberAfter(t, steady.ask("status", "status: counter is"), "counter is "); n < counted {
		t.Errorf("steady counts %d, had counted %d", n, counted)
	}
	// The exit the engine's restart hid was caught up on.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		v := victim.get()
		if v.State == "Ready" && v.ContainerID != victimBefore.ContainerID && v.RestartCount == victimBefore.RestartCount+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("victim after its process died while the engine was down: %s, container %s, %d restarts", v.State, v.ContainerID, v.RestartCount)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The interrupted build was built again.
	building.waitState("Ready", 5*time.Minute)
	if log := building.buildLog(); !strings.Contains(log, "the build was interrupted: the container engine went away") {
		t.Errorf("the build log does not say the build was interrupted:\n%s", lastLines(log, 30))
	}
	// Deleted and stopped, the Host leaves nothing: not even the build
	// sandbox the engine's restart cut off, which it could not remove then.
	h.cleanup()
	h.checkNothingLeft()
}

// waitStarting waits until a Host that waits for the engine says so: 503
// and status "starting" from /healthz, hershy_engine_up 0 on /metrics, and
// 503 for the API.
func waitStarting(t *testing.T, h *host) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var body struct {
			Status string `json:"status"`
			Engine struct {
				OK      bool   `json:"ok"`
				Problem string `json:"problem"`
			} `json:"engine"`
		}
		resp, err := http.Get(h.url() + "/healthz")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && body.Status == "starting" && !body.Engine.OK && body.Engine.Problem != "" {
				break
			}
		}
		select {
		case <-h.exited:
			t.Fatalf("a Host started while the engine is down exited:\n%s", h.logTail(20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz of a Host waiting for the engine: %v %+v", err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get(h.url() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "hershy_engine_up 0") {
		t.Errorf("/metrics while waiting for the engine:\n%s", b)
	}
	resp, err = http.Get(h.url() + "/programs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /programs while waiting for the engine: %s", resp.Status)
	}
}

// slowGo is a Go file of n small functions: a few seconds of compiling.
func slowGo(n int) string {
	var b strings.Builder
	b.WriteString("package main\n\n")
	for i := range n {
		fmt.Fprintf(&b, "func slow%d(x int) int {\n\tif x > %d {\n\t\treturn x*%d + %d\n\t}\n\treturn x + %d\n}\n\n", i, i, i, i%7, i)
	}
	fmt.Fprintf(&b, "var _ = slow%d\n", n-1)
	return b.String()
}

// stopEngine stops dockerd as a service manager would (SIGTERM) and waits
// for it to exit; it is started again when the test ends, whatever
// happens.
func stopEngine(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("pgrep", "-x", "dockerd").Output()
	if err != nil {
		t.Fatalf("no dockerd running: %v", err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(out))[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { startEngine(t) })
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("dockerd (%d) did not exit within 2 minutes of SIGTERM", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return pid
}

// startEngine starts dockerd the way the suite's set-up does (it does
// nothing if it runs) and waits until it answers.
func startEngine(t *testing.T) {
	t.Helper()
	cmd := exec.Command("../scripts/setup-engine.sh")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("starting dockerd: %v\n%s", err, out)
	}
}

// waitHealth waits until the Host's /healthz answers status.
func waitHealth(t *testing.T, h *host, status int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(h.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer %d within a minute (%v)", status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// containerPid is the host pid of a program container's first process,
// from the engine (asked before it goes down).
func containerPid(t *testing.T, p *client.Program) int {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", p.ContainerID).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", p.ContainerID, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid of %s: %q", p.ContainerID, out)
	}
	return pid
}
