package docker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/hershyorg/hershy/internal/driver"
)

// hostListener is a TCP listener on the host's loopback: a program must not
// be able to reach it. accepted counts connections.
func hostListener(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	// The listener works from the host: a failure from inside means the
	// sandbox blocked it, not that nothing listens.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("host listener: %v", err)
	}
	c.Close()
	for accepted.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	return ln.Addr().String(), &accepted
}

// stateDir makes a host directory writable by the probe's user.
func stateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chown(dir, 10001, 10001); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestContract creates a program container under the contract, reaches it
// through DialContext, probes the sandbox from inside, and checks every rule
// in the engine's own view of the container.
func TestContract(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		hostAddr, accepted := hostListener(t)
		state := stateDir(t)
		config := t.TempDir()
		os.WriteFile(filepath.Join(config, "settings"), []byte("x"), 0o644)

		spec := h.spec("contract", "")
		spec.Mounts = []driver.Mount{
			{Source: state, Target: "/state"},
			{Source: config, Target: "/config", ReadOnly: true},
		}
		begin := time.Now()
		id := h.create(spec)
		created := time.Since(begin)
		h.start(id)
		started := time.Since(begin) - created
		pc := h.client(id)
		ready := h.waitReady(pc)
		t.Logf("%s: create %v + start %v + first answer through DialContext %v = %v", h.rt,
			created.Round(time.Millisecond), started.Round(time.Millisecond), ready.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
		// The leftover check at the end must be able to see this container's
		// processes while it runs, or its silence would prove nothing.
		if procs := containerProcesses([]string{id}); len(procs) < 2 {
			t.Errorf("the leftover check sees only %v of a running container", procs)
		}

		// Probes from inside the program.
		if r := pc.probe(t, "/write?path=/probe-file"); r.OK {
			t.Error("writing to / succeeded")
		}
		if r := pc.probe(t, "/write?path=/state/probe-file"); !r.OK {
			t.Errorf("writing to /state failed: %s", r.Error)
		}
		if r := pc.probe(t, "/write?path=/config/probe-file"); r.OK {
			t.Error("writing to the read-only mount /config succeeded")
		}
		if r := pc.probe(t, "/write?path=/tmp/probe-file"); !r.OK {
			t.Errorf("writing to /tmp failed: %s", r.Error)
		}
		if r := pc.probe(t, "/write?path=/dev/shm/probe-file"); r.OK {
			t.Error("writing to /dev/shm succeeded")
		}
		if r := pc.probe(t, "/exec?dir=/tmp"); r.OK || !strings.Contains(r.Error, "permission denied") {
			t.Errorf("exec from /tmp: %+v, want permission denied (noexec)", r)
		}
		if r := pc.probe(t, "/uid"); r.Value != "10001:10001" {
			t.Errorf("uid:gid inside = %q, want 10001:10001", r.Value)
		}
		if r := pc.probe(t, "/pid"); r.Value == "1" {
			t.Error("the program is pid 1: no init process")
		}
		st := pc.probe(t, "/status").Value
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			for _, l := range strings.Split(st, "\n") {
				if strings.HasPrefix(l, k+":") && l != k+": 0000000000000000" {
					t.Errorf("capabilities inside: %q", l)
				}
			}
		}
		// gVisor's /proc/self/status has no NoNewPrivs line; runc's does.
		if h.rt == driver.RuntimeRunc && !strings.Contains(st, "NoNewPrivs: 1") {
			t.Errorf("NoNewPrivs not set inside: %q", st)
		}
		if r := pc.probe(t, "/ifaces"); r.Value != "lo" {
			t.Errorf("interfaces inside = %q (%s), want only lo", r.Value, r.Error)
		}
		if r := pc.probe(t, "/connect?addr="+url.QueryEscape(hostAddr)); r.OK {
			t.Errorf("the program reached the host's loopback listener %s", hostAddr)
		}
		if n := accepted.Load(); n != 1 {
			t.Errorf("host listener accepted %d connections, want only the test's own", n)
		}
		if _, err := os.Stat(filepath.Join(state, "probe-file")); !os.IsNotExist(err) {
			t.Errorf("probe-file should have been removed by the probe: %v", err)
		}

		// The engine's view.
		ctx := context.Background()
		c, err := d.Client().ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		hc := c.HostConfig
		check := func(rule string, ok bool, got any) {
			t.Helper()
			if !ok {
				t.Errorf("contract rule %q broken: %v", rule, got)
			}
		}
		check("read-only root", hc.ReadonlyRootfs, hc.ReadonlyRootfs)
		var writable, binds []string
		for _, m := range c.Mounts {
			if m.Type == "bind" {
				binds = append(binds, m.Destination)
				if m.RW {
					writable = append(writable, m.Destination)
				}
			}
		}
		sort.Strings(binds)
		check("only /state writable", slices.Equal(writable, []string{"/state"}), writable)
		check("bind mounts", slices.Equal(binds, []string{"/config", "/state"}), binds)
		check("tmpfs /tmp noexec", strings.Contains(hc.Tmpfs["/tmp"], "noexec") && hc.Tmpfs["/tmp"] == TmpfsOptions, hc.Tmpfs)
		check("no port bindings", len(hc.PortBindings) == 0 && !hc.PublishAllPorts, hc.PortBindings)
		check("no exposed ports", len(c.Config.ExposedPorts) == 0, c.Config.ExposedPorts)
		check("no published ports", c.NetworkSettings == nil || len(c.NetworkSettings.Ports) == 0, c.NetworkSettings)
		check("network none", hc.NetworkMode == "none", hc.NetworkMode)
		check("cap drop ALL", slices.Equal([]string(hc.CapDrop), []string{"ALL"}) && len(hc.CapAdd) == 0, hc.CapDrop)
		check("no-new-privileges", slices.Contains(hc.SecurityOpt, "no-new-privileges:true"), hc.SecurityOpt)
		check("not privileged", !hc.Privileged, hc.Privileged)
		check("init", hc.Init != nil && *hc.Init, hc.Init)
		check("non-root user", c.Config.User == "10001:10001", c.Config.User)
		check("pids limit", hc.PidsLimit != nil && *hc.PidsLimit == spec.Limits.Pids, hc.PidsLimit)
		check("memory", hc.Memory == spec.Limits.MemoryBytes, hc.Memory)
		check("no swap", hc.MemorySwap == hc.Memory, hc.MemorySwap)
		check("cpus", hc.NanoCPUs == int64(spec.Limits.CPUs*1e9), hc.NanoCPUs)
		check("runtime", hc.Runtime == h.rt, hc.Runtime)
		check("log config", hc.LogConfig.Type == "json-file" && hc.LogConfig.Config["max-size"] == "524288" && hc.LogConfig.Config["max-file"] == "2", hc.LogConfig)
		check("restart policy no", hc.RestartPolicy.Name == "no", hc.RestartPolicy)
		check("ipc none", hc.IpcMode == "none", hc.IpcMode)
		check("labels", c.Config.Labels[driver.LabelManaged] == "true" && c.Config.Labels[driver.LabelProgram] == "contract", c.Config.Labels)

		// The driver's view.
		info, err := d.InspectContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Running || info.Pid <= 0 || info.Runtime != h.rt || info.Image != probeImage(t, d) ||
			info.Name != spec.Name || info.StartedAt.IsZero() || !info.FinishedAt.IsZero() || info.Labels[driver.LabelProgram] != "contract" {
			t.Errorf("InspectContainer = %+v", info)
		}
		list, err := d.ListContainers(ctx, map[string]string{driver.LabelProgram: "contract", driver.LabelInstance: testRun})
		if err != nil || len(list) != 1 || list[0].ID != id || !list[0].Running {
			t.Errorf("ListContainers = %+v, %v", list, err)
		}
		if list, err := d.ListContainers(ctx, map[string]string{driver.LabelProgram: "nobody", driver.LabelInstance: testRun}); err != nil || len(list) != 0 {
			t.Errorf("ListContainers(nobody) = %+v, %v", list, err)
		}
	})
}

// TestImageOverrides: an image as an operator might load it (the driver
// refuses to build it), declaring volumes, a 1 ms health check and Host
// labels, runs under the Host's settings instead: no volume is created and
// the volume paths are not writable, no health check runs, and the image's
// Host labels do not reach the container.
func TestImageOverrides(t *testing.T) {
	d := newDriver(t)
	probeImage(t, d)
	tag := "hershy-test-overrides:" + testRun
	// The volume directories belong to the program's user, so a volume
	// the engine made of them would be writable.
	dir := probeContext(t, "FROM "+probeTag+"\n"+
		"COPY --chown=10001:10001 vol /data\nCOPY --chown=10001:10001 vol /var/cache\nCOPY --chown=10001:10001 vol /run\n"+
		"VOLUME /data /var/cache /run\n"+
		"HEALTHCHECK --interval=1ms --timeout=1s --retries=1 CMD [\"/probe\", \"-exit\", \"0\", \"-serve=false\"]\n"+
		"LABEL "+driver.LabelProgram+"=victim "+driver.LabelGeneration+"=9 "+driver.LabelManaged+"=false\n")
	if err := os.Mkdir(filepath.Join(dir, "vol"), 0o755); err != nil {
		t.Fatal(err)
	}
	rawBuildDir(t, d, tag, dir)
	ctx := context.Background()
	ins, err := d.Client().ImageInspect(ctx, tag)
	if err != nil || len(ins.Config.Volumes) != 3 || ins.Config.Healthcheck == nil || ins.Config.Labels[driver.LabelGeneration] != "9" {
		t.Fatalf("the test image lacks what it should carry: %+v, %v", ins.Config, err)
	}
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		secrets := t.TempDir()
		spec := h.spec("overrides", "")
		spec.Image = tag
		spec.Mounts = []driver.Mount{
			{Source: stateDir(t), Target: "/state"},
			{Source: secrets, Target: "/run/secrets", ReadOnly: true},
		}
		id := h.create(spec)
		h.start(id)
		pc := h.client(id)
		h.waitReady(pc)
		for _, p := range []string{"/data/x", "/var/cache/x", "/run/x"} {
			if r := pc.probe(t, "/write?path="+p); r.OK {
				t.Errorf("writing to %s (an image VOLUME) succeeded", p)
			}
		}
		if r := pc.probe(t, "/write?path=/state/x"); !r.OK {
			t.Errorf("writing to /state failed: %s", r.Error)
		}

		c, err := d.Client().ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range c.Mounts {
			if m.Type == "volume" || m.Type == "bind" && m.Destination != "/state" && m.Destination != "/run/secrets" {
				t.Errorf("mount %s %s (%s) RW=%v: the engine made a volume", m.Type, m.Destination, m.Name, m.RW)
			}
		}
		if hc := c.Config.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"NONE"}) {
			t.Errorf("health check %+v, want NONE", hc)
		}
		if c.State.Health != nil {
			t.Errorf("the engine runs a health check: %+v", c.State.Health)
		}
		if c.Image != ins.ID {
			t.Errorf("container of image %s, want the inspected %s", c.Image, ins.ID)
		}
		want := map[string]string{driver.LabelManaged: "true", driver.LabelProgram: "overrides", driver.LabelInstance: testRun, driver.LabelBuild: "probe", driver.LabelGeneration: ""}
		for k, v := range c.Config.Labels {
			if strings.HasPrefix(k, driver.LabelPrefix) && want[k] != v {
				t.Errorf("label %s=%q, want %q", k, v, want[k])
			}
		}
	})
}

// TestDialPooled sends many requests over one kept-alive connection dialled
// into the container's namespace, then many in parallel over a few.
func TestDialPooled(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		id := h.create(h.spec("pooled", ""))
		h.start(id)
		pc := h.client(id)
		h.waitReady(pc)
		pc.dials.Store(0)
		pc.CloseIdleConnections()

		const n = 300
		remotes := map[string]bool{}
		start := time.Now()
		for i := 0; i < n; i++ {
			remotes[pc.get(t, "/conn")] = true
		}
		per := time.Since(start) / n
		if dials := pc.dials.Load(); dials != 1 || len(remotes) != 1 {
			t.Errorf("%d sequential requests used %d dials and %d connections, want 1", n, dials, len(remotes))
		}
		t.Logf("%s: %v per keep-alive request through DialContext", h.rt, per)

		// Parallel: connections are reused, never more than the workers.
		pc.dials.Store(0)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					resp, err := pc.Get("http://probe/")
					if err != nil {
						failed.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body) // read to the end, or the connection is not reused
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		if f := failed.Load(); f != 0 {
			t.Errorf("%d parallel requests failed", f)
		}
		// The transport may dial one more while a connection frees up, and
		// keep both: a handful of dials, not one per request.
		dials := pc.dials.Load()
		if dials > 16 {
			t.Errorf("400 parallel requests over 8 workers used %d dials", dials)
		}
		t.Logf("%s: 400 parallel requests (8 workers) over %d dialled connections", h.rt, dials)

		// Fresh dials: timed, and no thread of this process may stay in the
		// container's namespace (each dialling thread exits with its
		// goroutine), nor may threads pile up.
		ctx := context.Background()
		threadsBefore := threadCount(t)
		start = time.Now()
		for i := 0; i < 20; i++ {
			c, err := d.DialContext(ctx, id, "127.0.0.1:8080")
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		t.Logf("%s: %v per new DialContext (cached namespace target)", h.rt, time.Since(start)/20)
		if grown := threadCount(t) - threadsBefore; grown > 5 {
			t.Errorf("20 dials left %d more threads", grown)
		}
		checkThreadsInHostNS(t)

		// Nothing listens on another port: refused, not hung.
		if c, err := d.DialContext(ctx, id, "127.0.0.1:8081"); err == nil {
			c.Close()
			t.Error("dial to a closed port succeeded")
		}
		if _, err := d.DialContext(ctx, id, "probe.example:8080"); err == nil {
			t.Error("dial by name succeeded")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := d.DialContext(cctx, id, "127.0.0.1:8080"); !errors.Is(err, context.Canceled) {
			t.Errorf("dial with a cancelled context: %v", err)
		}
	})
}

// TestEgressNetwork grants a program outbound network: it lands on the
// Host's bridge with inter-container traffic disabled, still has no
// published port, is still reached through its namespace, and still cannot
// reach the host's loopback.
func TestEgressNetwork(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	// The network is left in place afterwards: it is the engine-wide
	// infrastructure every Host shares, and other packages' tests running
	// at the same time may be attaching programs to it.
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		hostAddr, accepted := hostListener(t)
		spec := h.spec("egress", "")
		spec.Network = true
		id := h.create(spec)
		h.start(id)
		pc := h.client(id)
		h.waitReady(pc)

		n, err := d.Client().NetworkInspect(ctx, EgressNetwork, network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Driver != "bridge" || n.Options["com.docker.network.bridge.enable_icc"] != "false" {
			t.Errorf("network %s: driver %q options %v", EgressNetwork, n.Driver, n.Options)
		}
		// The host drops what arrives from the bridge for itself.
		br := bridgeName(n.ID, n.Options)
		if out, err := exec.Command("iptables", "-w", "-C", "INPUT", "-i", br, "-j", "DROP").CombinedOutput(); err != nil {
			t.Errorf("no INPUT drop rule for %s: %v %s", br, err, out)
		}
		c, err := d.Client().ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(c.HostConfig.NetworkMode) != EgressNetwork || len(c.NetworkSettings.Networks) != 1 || c.NetworkSettings.Networks[EgressNetwork] == nil {
			t.Errorf("networks: mode %s, %v", c.HostConfig.NetworkMode, c.NetworkSettings.Networks)
		}
		if len(c.HostConfig.PortBindings) != 0 || len(c.NetworkSettings.Ports) != 0 {
			t.Errorf("ports published: %v %v", c.HostConfig.PortBindings, c.NetworkSettings.Ports)
		}
		if r := pc.probe(t, "/ifaces"); !strings.Contains(r.Value, "eth0") {
			t.Errorf("interfaces inside = %q, want lo and eth0", r.Value)
		}
		if r := pc.probe(t, "/connect?addr="+url.QueryEscape(hostAddr)); r.OK || accepted.Load() != 1 {
			t.Errorf("the program reached the host's loopback listener %s", hostAddr)
		}
	})
}

// TestCreateRefusedByEngine: a spec the driver accepts but the engine
// cannot run (missing bind source) fails at create, leaving nothing.
func TestCreateRefusedByEngine(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		spec := h.spec("badmount", "")
		spec.Mounts = []driver.Mount{{Source: "/nonexistent/hershy-" + testRun, Target: "/state"}}
		if id, err := d.CreateContainer(context.Background(), spec); err == nil {
			h.mu.Lock()
			h.ids = append(h.ids, id)
			h.mu.Unlock()
			d.RemoveContainer(context.Background(), id)
			t.Fatal("create with a missing bind source succeeded")
		}
		list, err := d.ListContainers(context.Background(), map[string]string{driver.LabelProgram: "badmount", driver.LabelInstance: testRun})
		if err != nil || len(list) != 0 {
			t.Fatalf("left: %v %v", list, err)
		}
	})
}

func threadCount(t *testing.T) int {
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		t.Fatal(err)
	}
	return len(tasks)
}

// checkThreadsInHostNS fails unless every thread of this process (the main
// thread included) is in the network namespace the process started in,
// allowing a moment for the dialling threads to finish exiting.
func checkThreadsInHostNS(t *testing.T) {
	t.Helper()
	if hostNetNS == "" {
		t.Fatal("the starting network namespace was not recorded")
	}
	var stray []string
	for deadline := time.Now().Add(2 * time.Second); ; {
		stray = stray[:0]
		nss, _ := filepath.Glob("/proc/self/task/*/ns/net")
		for _, p := range nss {
			if l, err := os.Readlink(p); err == nil && l != hostNetNS {
				stray = append(stray, p+" -> "+l)
			}
		}
		if len(stray) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range stray {
		t.Errorf("thread in a foreign network namespace (want %s): %s", hostNetNS, s)
	}
}
