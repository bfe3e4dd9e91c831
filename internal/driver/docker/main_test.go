package docker

// Test harness: a real Docker engine, the probe program built at test time,
// a table over runc and runsc, and checks that nothing is left behind.
//
// Without an engine the engine tests skip, unless CI is set: then a missing
// engine or a missing runsc runtime fails them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

var (
	// testRun tells this run's containers and images from anything else.
	testRun = fmt.Sprintf("t%x", time.Now().UnixNano()&0xffffffffff)

	probeOnce  sync.Once
	probeID    string // image id of the probe image
	probeTag   string
	probeBin   string // path of the built probe binary
	probeErr   error
	tmpRoot    string
	hostNetNS  string
	probeBuilt bool
)

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "hershy-docker-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The network namespace the test process starts in, read from its main
	// thread before any dial.
	hostNetNS, _ = os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", os.Getpid()))
	code := m.Run()
	cleanupRun()
	os.Exit(code)
}

// cleanupRun removes whatever this run may have left (normally nothing: each
// test removes what it creates) and the probe image.
func cleanupRun() {
	if tmpRoot != "" {
		defer os.RemoveAll(tmpRoot)
	}
	d, err := New()
	if err != nil {
		return
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	left, err := d.ListContainers(ctx, map[string]string{driver.LabelInstance: testRun})
	if err == nil {
		for _, c := range left {
			fmt.Fprintf(os.Stderr, "cleanup: removing leftover container %s\n", c.Name)
			d.RemoveContainer(ctx, c.ID)
		}
	}
	if probeBuilt {
		if err := d.RemoveImage(ctx, probeTag); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: remove probe image: %v\n", err)
		}
	}
}

func inCI() bool { return os.Getenv("CI") != "" }

// newDriver returns a driver on a live engine, or skips (fails in CI).
func newDriver(t *testing.T) *Driver {
	t.Helper()
	d, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Check(ctx); err != nil {
		d.Close()
		if inCI() {
			t.Fatalf("CI is set and the Docker engine is not usable: %v (run scripts/setup-engine.sh)", err)
		}
		t.Skipf("no Docker engine answers (%v): skipping engine tests; run scripts/setup-engine.sh, set CI=1 to make this fail", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// forEachRuntime runs fn as a subtest under runc and under runsc, each with
// a harness that removes its containers and then checks that no process of
// them is left (containerd shims, gVisor sandboxes and gofers included).
func forEachRuntime(t *testing.T, d *Driver, fn func(t *testing.T, h *harness)) {
	for _, rt := range []string{driver.RuntimeRunc, driver.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.Check(ctx, rt); err != nil {
				if inCI() {
					t.Fatalf("CI is set and runtime %s is missing: %v", rt, err)
				}
				t.Skipf("runtime %s missing: %v", rt, err)
			}
			fn(t, newHarness(t, d, rt))
		})
	}
}

type harness struct {
	t   *testing.T
	d   *Driver
	rt  string
	mu  sync.Mutex
	ids []string
}

func newHarness(t *testing.T, d *Driver, rt string) *harness {
	h := &harness{t: t, d: d, rt: rt}
	// Registered first, so it runs last: after every container's removal.
	t.Cleanup(func() { checkNoLeftovers(t, h.created()) })
	return h
}

func (h *harness) created() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}

// spec is a contract-conforming spec of the probe for this runtime.
func (h *harness) spec(name string, probeFlags string) driver.ContainerSpec {
	pids := int64(64)
	if h.rt == driver.RuntimeRunsc {
		pids = MinPidsRunsc
	}
	s := driver.ContainerSpec{
		Name:    fmt.Sprintf("hershy-test-%s-%s-%s", testRun, name, h.rt),
		Image:   probeImage(h.t, h.d),
		Runtime: h.rt,
		User:    "10001:10001",
		Labels: map[string]string{
			driver.LabelProgram:  name,
			driver.LabelBuild:    "probe",
			driver.LabelInstance: testRun,
		},
		Limits: driver.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: pids, LogBytes: 1 << 20},
	}
	if probeFlags != "" {
		s.Env = []string{"PROBE_FLAGS=" + probeFlags}
	}
	return s
}

// create creates a container and removes it when the test ends.
func (h *harness) create(spec driver.ContainerSpec) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := h.d.CreateContainer(ctx, spec)
	if err != nil {
		h.t.Fatalf("CreateContainer(%s): %v", spec.Name, err)
	}
	h.mu.Lock()
	h.ids = append(h.ids, id)
	h.mu.Unlock()
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.d.RemoveContainer(ctx, id); err != nil {
			h.t.Errorf("cleanup: RemoveContainer(%s): %v", id, err)
		}
	})
	return id
}

func (h *harness) start(id string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.d.StartContainer(ctx, id); err != nil {
		h.t.Fatalf("StartContainer: %v", err)
	}
}

// probeClient is an HTTP client whose connections are dialled into the
// container's namespace by the driver; dials counts them.
type probeClient struct {
	*http.Client
	dials atomic.Int64
}

func (h *harness) client(id string) *probeClient {
	pc := &probeClient{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			pc.dials.Add(1)
			return h.d.DialContext(ctx, id, "127.0.0.1:8080")
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	h.t.Cleanup(tr.CloseIdleConnections)
	pc.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return pc
}

// get fetches a probe route and returns the body.
func (pc *probeClient) get(t *testing.T, route string) string {
	t.Helper()
	resp, err := pc.Get("http://probe" + route)
	if err != nil {
		t.Fatalf("GET %s: %v", route, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d, %v", route, resp.StatusCode, err)
	}
	return string(b)
}

type probeResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Value string `json:"value"`
}

func (pc *probeClient) probe(t *testing.T, route string) probeResult {
	t.Helper()
	var r probeResult
	body := pc.get(t, route)
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("GET %s: %q: %v", route, body, err)
	}
	return r
}

// waitReady polls "/" through DialContext until the probe answers "ok" and
// returns how long that took.
func (h *harness) waitReady(pc *probeClient) time.Duration {
	h.t.Helper()
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := pc.Get("http://probe/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "ok" {
				return time.Since(start)
			}
			err = fmt.Errorf("answer %q", b)
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("probe did not answer within 20s: %v", last)
	return 0
}

// checkNoLeftovers fails the test if any process still belongs to one of
// the (removed) containers, waiting a little for shims to exit.
func checkNoLeftovers(t *testing.T, ids []string) {
	t.Helper()
	if len(ids) == 0 {
		return
	}
	var found []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		found = containerProcesses(ids)
		if len(found) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, f := range found {
		t.Errorf("leftover process after removal: %s", f)
	}
}

// containerProcesses lists the host processes of the given containers: by
// command line (the containerd shim, runsc's sandbox and gofer carry the id)
// or by cgroup (the container's own processes under runc, the sandbox under
// runsc).
func containerProcesses(ids []string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, _ := os.ReadFile(p + "/cmdline")
		cg, _ := os.ReadFile(p + "/cgroup")
		for _, id := range ids {
			if bytes.Contains(cmd, []byte(id)) || bytes.Contains(cg, []byte(id)) {
				c := strings.ReplaceAll(string(bytes.TrimRight(cmd, "\x00")), "\x00", " ")
				if len(c) > 200 {
					c = c[:200] + "..."
				}
				found = append(found, fmt.Sprintf("pid %s (%s) of container %.12s", filepath.Base(p), c, id))
			}
		}
	}
	return found
}

// buildProbeBinary compiles testdata/probe (its own module) as a static
// binary.
func buildProbeBinary() (string, error) {
	bin := filepath.Join(tmpRoot, "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = filepath.Join("testdata", "probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build probe: %v\n%s", err, out)
	}
	return bin, nil
}

// probeContext writes a build context holding the probe binary and the
// given Dockerfile.
func probeContext(t *testing.T, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	if err := writeProbeContext(dir, dockerfile); err != nil {
		t.Fatal(err)
	}
	return dir
}

var binOnce sync.Once

func writeProbeContext(dir, dockerfile string) error {
	var err error
	binOnce.Do(func() { probeBin, err = buildProbeBinary() })
	if err != nil {
		return err
	}
	if probeBin == "" {
		return fmt.Errorf("the probe binary failed to build earlier")
	}
	b, err := os.ReadFile(probeBin)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), b, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644)
}

const probeDockerfile = "FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n"

// probeImage builds the probe image once per test binary.
func probeImage(t testing.TB, d *Driver) string {
	t.Helper()
	probeOnce.Do(func() {
		probeTag = "hershy-test-probe:" + testRun
		dir := filepath.Join(tmpRoot, "probe-context")
		if probeErr = os.MkdirAll(dir, 0o755); probeErr != nil {
			return
		}
		if probeErr = writeProbeContext(dir, probeDockerfile); probeErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		probeID, probeErr = d.BuildImage(ctx, driver.ImageSpec{
			ContextDir: dir, Tag: probeTag, MaxContext: 64 << 20,
			Labels: map[string]string{driver.LabelManaged: "true", driver.LabelInstance: testRun},
		}, io.Discard)
		probeBuilt = probeErr == nil
	})
	if probeErr != nil {
		t.Fatalf("building the probe image: %v", probeErr)
	}
	return probeID
}
