// Package drivertest is a conformance kit for implementations of
// driver.Driver, in the spirit of testing/slogtest: Run exercises a driver
// through the interface alone and fails, check by check, where it breaks
// the contract the Host relies on. The Docker driver runs it against the
// real engine under runc and runsc, the in-memory fake (package fake) runs
// it in plain tests and inside testing/synctest bubbles, and any later
// driver (Kubernetes) runs it too; so a test of the Host on the fake holds
// for the engines.
//
// What each check pins down is in its doc comment (checks.go): create,
// start, stop and remove and their idempotency; inspect and list by label;
// the image's Host labels kept out of containers; the refusals of specs
// weaker than the sandbox contract (driver.ErrInvalidSpec), of missing
// images and mount sources and of a name in use; events (start, die with
// the exit code, oom, the stream's end with its context); logs (plain
// demultiplexed text, since, follow, Close); DialContext into the
// container's loopback and its errors when the container is not running or
// gone; what a program may write; RunJob (exit code, output, mounts,
// memory, cancellation removes the job); kept jobs where the driver keeps
// them (driver.JobKeeper: commands, their exit status and output, memory
// kills, cancellation); BuildImage, ImportImage (a layer
// package imagetar wrote: the image's settings, files and owners as its
// containers see them; a broken layer makes no image; settings an engine
// could misread are refused), ImageExists and RemoveImage (ErrInUse while a container uses the image
// or an image built on it); Stats (the memory a program touched against its
// limit, counters that do not go back, ErrNotRunning and ErrNotFound); and
// concurrent use.
//
// # The probe
//
// The kit needs one image from the driver's world: Fixture.ProbeImage,
// whose containers run the probe program (internal/driver/docker/testdata/
// probe, and its in-memory rendering fake.Probe). The probe reads its flags
// from PROBE_FLAGS in the environment, and a job's from its command after
// the program's name: -exit N, -lines N [-every D], -eat MiB, -sleep D,
// -serve=false, -ignore-term, -print-ifaces and -copy src:dst. Serving, it
// answers HTTP on 127.0.0.1:8080 inside the container: "/" says ok, /uid
// the user, /env?name= a variable of its environment, /stat?path= a file's
// mode and owner ("drwx------ 65532:65532"), /write?path= whether it could
// write there, /conn the caller's address.
//
// Fixture.ProbeBinary is the probe program's file, which the kit puts into
// a layer of its own for ImportImage.
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// Fixture is a driver under test and what the kit needs to exercise it.
type Fixture struct {
	Driver driver.Driver
	// Runtime goes into every spec the kit makes (driver.RuntimeRunc or
	// driver.RuntimeRunsc); the kit's limits follow its rules.
	Runtime string
	// ProbeImage is a tag of an image whose containers run the probe (see
	// the package documentation).
	ProbeImage string
	// ProbeBinary is the path of the probe program (a static binary) for
	// the images the kit writes itself; an engine that runs Programs
	// instead of binaries (the fake) may be given any file.
	ProbeBinary string
	// Prefix starts the name of every container and image tag the kit
	// makes, and Labels go on each container and image: on an engine
	// other tests share, they tell the kit's objects from theirs. Prefix
	// must be lowercase letters, digits and dashes.
	Prefix string
	Labels map[string]string
	// UnreliableOOMFlag says the engine may report a memory kill as a plain
	// kill: exit code 137 without an oom event or OOMKilled (gVisor's
	// sandbox dies before the engine hears of the kernel's kill).
	UnreliableOOMFlag bool
	// Leftovers, if set, runs when a check has removed what it made, with
	// the ids of every container it created, to look for what the engine
	// may have left behind (processes, mounts).
	Leftovers func(t *testing.T, containerIDs []string)
	// RemotePids says the engine runs containers on other machines, so
	// ContainerInfo.Pid is 0 even while a container runs (Kubernetes).
	RemotePids bool
	// LogsPerRun says a container started again keeps only its new run's
	// output (Kubernetes: a Pod per run).
	LogsPerRun bool
	// FlatImages says the engine cannot tell which images were built on an
	// image (a registry), so RemoveImage of a base image whose child a
	// container uses may succeed.
	FlatImages bool
	// SampledStats says Stats reports the node's last sample, taken every
	// few seconds, and no task count (Kubernetes: the kubelet's summary):
	// the kit waits for a sample that shows what the probe touched, and
	// accepts 0 tasks.
	SampledStats bool
	// Volume, if set, makes the writable (or read-only) volume a check
	// mounts at target, and returns it with the folder on this machine
	// that holds its files ("" when they cannot be read from here). Unset,
	// the kit bind-mounts a temporary folder.
	Volume func(t *testing.T, target string, readOnly bool) (m driver.Mount, dir string)
	// Parallel runs the checks in parallel with each other.
	Parallel bool
	// Timeout bounds each wait of a check (an event, an exit, an answer).
	// Default one minute.
	Timeout time.Duration
}

// check is one conformance check.
type check struct {
	name string
	fn   func(k *kit)
}

// Run runs every check as a subtest of t, each with its own fixture from
// newFixture (called inside the subtest; register its cleanups there).
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			k := newKit(t, newFixture(t))
			if k.fx.Parallel {
				t.Parallel()
			}
			c.fn(k)
		})
	}
}

// RunSynctest runs every check as a subtest of t inside its own
// testing/synctest bubble: newFixture is called inside the bubble, so the
// driver's goroutines and clock are the bubble's, and the bubble's end
// fails the check if any goroutine the driver started is still alive. Only
// an in-memory driver can run so (no real sockets, no real engine).
func RunSynctest(t *testing.T, newFixture func(t *testing.T) Fixture) {
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c.fn(newKit(t, newFixture(t)))
			})
		})
	}
}

// kit is one check's view of the fixture, with helpers that clean up what
// they make.
type kit struct {
	t     *testing.T
	fx    Fixture
	d     driver.Driver
	ctx   context.Context
	check string // a label value that names this check's containers

	mu   sync.Mutex
	made []string
	seq  int
}

// checkLabel is put on every container a check makes, so a check lists
// only its own even when checks run in parallel on one engine.
const checkLabel = "hershy.drivertest.check"

func newKit(t *testing.T, fx Fixture) *kit {
	if fx.Timeout <= 0 {
		fx.Timeout = time.Minute
	}
	if fx.Runtime == "" {
		fx.Runtime = driver.RuntimeRunsc
	}
	k := &kit{t: t, fx: fx, d: fx.Driver, ctx: context.Background()}
	k.check = fx.Prefix + "-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	// Registered first, so it runs last: after every removal.
	t.Cleanup(func() {
		if fx.Leftovers != nil {
			k.mu.Lock()
			ids := append([]string(nil), k.made...)
			k.mu.Unlock()
			fx.Leftovers(t, ids)
		}
	})
	return k
}

// name returns a unique engine-level name for this check.
func (k *kit) name(what string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seq++
	base := k.fx.Prefix + "-" + what
	return fmt.Sprintf("%s-%d-%x", base, k.seq, fnv(k.check))
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

func (k *kit) labels(extra map[string]string) map[string]string {
	l := map[string]string{checkLabel: k.check}
	for key, v := range k.fx.Labels {
		l[key] = v
	}
	for key, v := range extra {
		l[key] = v
	}
	return l
}

func (k *kit) limits() driver.Limits {
	pids := int64(64)
	if k.fx.Runtime == driver.RuntimeRunsc {
		pids = driver.MinPidsRunsc
	}
	return driver.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: pids, LogBytes: 1 << 20}
}

// spec is a contract-conforming spec of the probe with flags.
func (k *kit) spec(what, flags string) driver.ContainerSpec {
	s := driver.ContainerSpec{
		Name:    k.name(what),
		Image:   k.fx.ProbeImage,
		Runtime: k.fx.Runtime,
		User:    "10001:10001",
		Labels:  k.labels(map[string]string{driver.LabelProgram: what}),
		Limits:  k.limits(),
	}
	if flags != "" {
		s.Env = []string{"PROBE_FLAGS=" + flags}
	}
	return s
}

// job is a contract-conforming job running the probe with args.
func (k *kit) job(what string, args ...string) driver.JobSpec {
	return driver.JobSpec{
		Name:    k.name(what),
		Image:   k.fx.ProbeImage,
		Runtime: k.fx.Runtime,
		User:    "10001:10001",
		Cmd:     append([]string{"/probe", "-serve=false"}, args...),
		Labels:  k.labels(map[string]string{driver.LabelJob: what}),
		Limits:  k.limits(),
	}
}

// track remembers a container for the leftovers check and removes it when
// the check ends.
func (k *kit) track(id string) {
	k.mu.Lock()
	k.made = append(k.made, id)
	k.mu.Unlock()
	k.t.Cleanup(func() {
		if err := k.d.RemoveContainer(context.Background(), id); err != nil {
			k.t.Errorf("cleanup: RemoveContainer(%s): %v", id, err)
		}
	})
}

// create creates a container (removed when the check ends).
func (k *kit) create(spec driver.ContainerSpec) string {
	k.t.Helper()
	id, err := k.d.CreateContainer(k.ctx, spec)
	if err != nil {
		k.t.Fatalf("CreateContainer(%s): %v", spec.Name, err)
	}
	if id == "" {
		k.t.Fatalf("CreateContainer(%s) returned no id", spec.Name)
	}
	k.track(id)
	return id
}

func (k *kit) start(id string) {
	k.t.Helper()
	if err := k.d.StartContainer(k.ctx, id); err != nil {
		k.t.Fatalf("StartContainer(%s): %v", id, err)
	}
}

// run creates and starts a probe with flags.
func (k *kit) run(what, flags string) string {
	k.t.Helper()
	id := k.create(k.spec(what, flags))
	k.start(id)
	return id
}

func (k *kit) inspect(id string) driver.ContainerInfo {
	k.t.Helper()
	info, err := k.d.InspectContainer(k.ctx, id)
	if err != nil {
		k.t.Fatalf("InspectContainer(%s): %v", id, err)
	}
	return info
}

// mine lists this check's containers (with extra labels).
func (k *kit) mine(extra map[string]string) []driver.ContainerInfo {
	k.t.Helper()
	l := map[string]string{checkLabel: k.check}
	for key, v := range extra {
		l[key] = v
	}
	cs, err := k.d.ListContainers(k.ctx, l)
	if err != nil {
		k.t.Fatalf("ListContainers: %v", err)
	}
	return cs
}

// eventually polls cond until it holds or the timeout passes.
func (k *kit) eventually(what string, cond func() bool) {
	k.t.Helper()
	deadline := time.Now().Add(k.fx.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			k.t.Fatalf("%s: not within %v", what, k.fx.Timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits until the container is not running and returns its facts.
func (k *kit) waitExit(id string) driver.ContainerInfo {
	k.t.Helper()
	var info driver.ContainerInfo
	k.eventually("exit of "+id, func() bool {
		info = k.inspect(id)
		return !info.Running && !info.FinishedAt.IsZero()
	})
	return info
}

// client is an HTTP client whose connections the driver dials into the
// container's loopback; dials counts them. Its idle connections are closed
// when the check ends.
type client struct {
	*http.Client
	dials atomic.Int64
}

func (k *kit) client(id string) *client {
	c := &client{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c.dials.Add(1)
			return k.d.DialContext(ctx, id, "127.0.0.1:8080")
		},
		MaxIdleConnsPerHost: 4,
		DisableCompression:  true,
	}
	k.t.Cleanup(tr.CloseIdleConnections)
	c.Client = &http.Client{Transport: tr, Timeout: k.fx.Timeout}
	return c
}

// get fetches a probe route and returns the body.
func (k *kit) get(c *client, route string) string {
	k.t.Helper()
	resp, err := c.Get("http://probe" + route)
	if err != nil {
		k.t.Fatalf("GET %s: %v", route, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		k.t.Fatalf("GET %s: %d %q, %v", route, resp.StatusCode, b, err)
	}
	return string(b)
}

// waitReady polls "/" until the probe answers ok.
func (k *kit) waitReady(c *client) {
	k.t.Helper()
	deadline := time.Now().Add(k.fx.Timeout)
	for {
		resp, err := c.Get("http://probe/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "ok" {
				return
			}
			err = fmt.Errorf("answer %q", b)
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("the probe did not answer within %v: %v", k.fx.Timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextEvent waits for the next event of container id.
func (k *kit) nextEvent(evs <-chan driver.Event, errs <-chan error, id string) (driver.Event, bool) {
	k.t.Helper()
	timer := time.NewTimer(k.fx.Timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				k.t.Fatalf("the event stream ended: %v", <-errs)
			}
			if ev.ContainerID == id {
				return ev, true
			}
		case <-timer.C:
			return driver.Event{}, false
		}
	}
}

// volume is a volume for target (Fixture.Volume), and its folder here.
func (k *kit) volume(target string, readOnly bool) (driver.Mount, string) {
	k.t.Helper()
	if k.fx.Volume != nil {
		return k.fx.Volume(k.t, target, readOnly)
	}
	dir := k.tempDir()
	return driver.Mount{Source: dir, Target: target, ReadOnly: readOnly}, dir
}

// pid reports whether a container's pid is what its state says.
func (k *kit) pidOK(info driver.ContainerInfo) bool {
	if k.fx.RemotePids || !info.Running {
		return info.Pid == 0
	}
	return info.Pid > 0
}

// tempDir is a folder every user may write (the probe runs as 10001).
func (k *kit) tempDir() string {
	k.t.Helper()
	dir := k.t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		k.t.Fatal(err)
	}
	return dir
}

// contextDir writes a build context: files, and the Dockerfile.
func (k *kit) contextDir(dockerfile string, files map[string]string) string {
	k.t.Helper()
	dir := k.t.TempDir()
	files["Dockerfile"] = dockerfile
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			k.t.Fatal(err)
		}
	}
	return dir
}

// tag names an image of this check.
func (k *kit) tag(what string) string { return k.name(what) + ":kit" }

// build builds an image FROM base with a label unique to it (so no engine
// cache returns an image another check owns), removed when the check ends.
func (k *kit) build(what, base string, labels map[string]string) (tag, id string) {
	k.t.Helper()
	tag = k.tag(what)
	dir := k.contextDir("FROM "+base+"\nLABEL hershy.drivertest.image=\""+tag+"\"\n", map[string]string{})
	var out syncBuffer
	id, err := k.d.BuildImage(k.ctx, driver.ImageSpec{ContextDir: dir, Tag: tag, Labels: k.labelsImage(labels), MaxContext: 1 << 20}, &out)
	if err != nil {
		k.t.Fatalf("BuildImage(%s): %v\n%s", tag, err, out.String())
	}
	k.t.Cleanup(func() {
		if err := k.d.RemoveImage(context.Background(), tag); err != nil {
			k.t.Errorf("cleanup: RemoveImage(%s): %v", tag, err)
		}
	})
	return tag, id
}

func (k *kit) labelsImage(extra map[string]string) map[string]string {
	l := map[string]string{}
	for key, v := range k.fx.Labels {
		l[key] = v
	}
	for key, v := range extra {
		l[key] = v
	}
	return l
}

// syncBuffer collects output written from another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
	n  int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readAllWithin reads r to its end, failing the check if that takes longer
// than the timeout (a follow that does not end).
func (k *kit) readAllWithin(r io.Reader) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		ch <- result{b, err}
	}()
	timer := time.NewTimer(k.fx.Timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-timer.C:
		return nil, fmt.Errorf("not done within %v", k.fx.Timeout)
	}
}

// isNotFound reports whether err wraps driver.ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, driver.ErrNotFound) }
