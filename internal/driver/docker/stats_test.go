package docker

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/hershyorg/hershy/internal/driver"
)

// The parsers of the kernel's files, on the texts this machine's kernel
// writes (cgroup v1, hybrid) and on cgroup v2's.

func TestParseMountInfo(t *testing.T) {
	const mountinfo = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
37 30 0:33 /nested /sys/fs/cgroup/pids\040x rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
38 30 0:34 / /elsewhere/memory rw - cgroup cgroup rw,memory
`
	got := parseMountInfo([]byte(mountinfo))
	want := cgroupMounts{
		"":        {dir: "/sys/fs/cgroup/unified", root: "/"},
		"cpu":     {dir: "/sys/fs/cgroup/cpu,cpuacct", root: "/"},
		"cpuacct": {dir: "/sys/fs/cgroup/cpu,cpuacct", root: "/"},
		"memory":  {dir: "/sys/fs/cgroup/memory", root: "/"}, // the first mount of it
		"pids":    {dir: "/sys/fs/cgroup/pids x", root: "/nested"},
	}
	if len(got) != len(want) {
		t.Errorf("mounts %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("mount of %q = %+v, want %+v", k, got[k], w)
		}
	}
}

func TestCgroupMountPath(t *testing.T) {
	for _, c := range []struct {
		m      cgroupMount
		p      string
		want   string
		wantOK bool
	}{
		{cgroupMount{"/sys/fs/cgroup/memory", "/"}, "/docker/abc", "/sys/fs/cgroup/memory/docker/abc", true},
		{cgroupMount{"/sys/fs/cgroup", "/"}, "/system.slice/docker-abc.scope", "/sys/fs/cgroup/system.slice/docker-abc.scope", true},
		{cgroupMount{"/sys/fs/cgroup/memory", "/docker"}, "/docker/abc", "/sys/fs/cgroup/memory/abc", true},
		{cgroupMount{"/sys/fs/cgroup/memory", "/docker"}, "/dockerx/abc", "", false}, // not below the mount's root
		{cgroupMount{"/sys/fs/cgroup/memory", "/kubepods"}, "/docker/abc", "", false},
	} {
		got, ok := c.m.path(c.p)
		if got != c.want || ok != c.wantOK {
			t.Errorf("%+v.path(%q) = %q, %v; want %q, %v", c.m, c.p, got, ok, c.want, c.wantOK)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	const v1 = `9:name=systemd:/docker/abc
4:memory:/docker/abc
2:cpu,cpuacct:/docker/abc
0::/docker/abc
`
	got := parseProcCgroup([]byte(v1))
	for _, c := range []string{"memory", "cpu", "cpuacct", "", "name=systemd"} {
		if got[c] != "/docker/abc" {
			t.Errorf("path of %q = %q", c, got[c])
		}
	}
	if _, ok := got["pids"]; ok {
		t.Error("a controller the file does not name was found")
	}
}

func TestStatField(t *testing.T) {
	const memStat = "cache 8192\nrss 4816896\ninactive_file 4096\ntotal_cache 8192\ntotal_inactive_file 12288\n"
	for _, c := range []struct {
		key  string
		want int64
		ok   bool
	}{
		{"inactive_file", 4096, true},
		{"total_inactive_file", 12288, true},
		{"rss", 4816896, true},
		{"inactive", 0, false}, // a prefix of a key is not the key
		{"total_rss", 0, false},
	} {
		if got, ok := statField([]byte(memStat), c.key); got != c.want || ok != c.ok {
			t.Errorf("statField(%q) = %d, %v; want %d, %v", c.key, got, ok, c.want, c.ok)
		}
	}
	if got, ok := statField([]byte("usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567"), "usage_usec"); got != 1234567 || !ok {
		t.Errorf("usage_usec = %d, %v", got, ok)
	}
}

func TestParseNetDev(t *testing.T) {
	const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  585761    2443    0    0    0     0          0         0   585761    2443    0    0    0     0       0          0
  eth0:    1500      10    0    0    0     0          0         0      700       7    0    0    0     0       0          0
  eth1:      20       1    0    0    0     0          0         0       30       1    0    0    0     0       0          0
`
	rx, tx, err := parseNetDev([]byte(netDev))
	if err != nil || rx != 1520 || tx != 730 {
		t.Errorf("parseNetDev = %d, %d, %v; want 1520, 730 (loopback excluded)", rx, tx, err)
	}
	if _, _, err := parseNetDev([]byte("h1\nh2\n  eth0: 1 2 3\n")); err == nil {
		t.Error("a short line was accepted")
	}
}

func TestEngineStatsBody(t *testing.T) {
	var b engineStatsBody
	if _, err := b.stats(); !errors.Is(err, errStopped) {
		t.Errorf("a stopped container's empty answer: %v, want errStopped", err)
	}
	b.Read = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	b.PidsStats.Current = 7
	b.CPUStats.CPUUsage.TotalUsage = 5e9
	b.MemoryStats.Usage = 100 << 20
	b.MemoryStats.Limit = 256 << 20
	b.MemoryStats.Stats = map[string]int64{"total_inactive_file": 10 << 20, "inactive_file": 1}
	b.Networks = map[string]struct {
		RxBytes int64 `json:"rx_bytes"`
		TxBytes int64 `json:"tx_bytes"`
	}{"eth0": {RxBytes: 10, TxBytes: 20}, "lo": {RxBytes: 1000, TxBytes: 1000}}
	got, err := b.stats()
	want := driver.Stats{At: b.Read, CPUNanos: 5e9, MemoryBytes: 90 << 20, MemoryLimitBytes: 256 << 20, Pids: 7, NetRxBytes: 10, NetTxBytes: 20}
	if err != nil || got != want {
		t.Errorf("stats = %+v, %v; want %+v", got, err, want)
	}
}

// The engine tests: what Stats reads from the kernel's files is what the
// program does, under runc and runsc.

// eatMiB is what TestStatsMemory's probe touches, under a limit that
// leaves room for gVisor's sandbox.
const (
	eatMiB      = 48
	statsLimitB = 192 << 20
)

// TestStatsMemory: a probe that touched eatMiB MiB shows at least that
// much in its working set, against its limit; the engine's own stats API
// (the fallback) agrees within the sandbox's noise.
func TestStatsMemory(t *testing.T) {
	d := newDriver(t)
	viaEngine := engineStatsDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		spec := h.spec("stats-mem", "-eat 48")
		spec.Limits.MemoryBytes = statsLimitB
		id := h.create(spec)
		h.start(id)
		waitLog(t, d, id, "ate 48 MiB")
		files := stats(t, d, id)
		if tgt := d.cachedStats(id); tgt == nil || tgt.viaEngine {
			t.Fatalf("Stats did not read the files on this machine (target %+v)", tgt)
		}
		if files.MemoryBytes < eatMiB<<20 || files.MemoryBytes > statsLimitB {
			t.Errorf("working set %d MiB, want at least the %d MiB the probe touched, within the limit", files.MemoryBytes>>20, eatMiB)
		}
		if files.MemoryLimitBytes != statsLimitB {
			t.Errorf("limit %d, want %d", files.MemoryLimitBytes, int64(statsLimitB))
		}
		if files.Pids < 1 || files.Pids > spec.Limits.Pids || files.CPUNanos <= 0 {
			t.Errorf("pids %d, cpu %d ns", files.Pids, files.CPUNanos)
		}
		engine := stats(t, viaEngine, id)
		t.Logf("%s: files %+v; engine %+v", h.rt, files, engine)
		if engine.MemoryBytes < eatMiB<<20 {
			t.Errorf("the engine's working set %d MiB, want at least %d", engine.MemoryBytes>>20, eatMiB)
		}
		if h.rt == driver.RuntimeRunc {
			// Under runc the engine reads the same cgroup files.
			if diff := engine.MemoryBytes - files.MemoryBytes; diff > 4<<20 || diff < -4<<20 {
				t.Errorf("working set: files %d, engine %d bytes", files.MemoryBytes, engine.MemoryBytes)
			}
			if engine.MemoryLimitBytes != files.MemoryLimitBytes || engine.Pids != files.Pids {
				t.Errorf("limit or pids differ: files %+v, engine %+v", files, engine)
			}
		}
	})
}

// TestStatsCPU: the CPU time of a probe that spins grows faster than an
// idle probe's over the same interval, read from the files and from the
// engine alike.
func TestStatsCPU(t *testing.T) {
	d := newDriver(t)
	viaEngine := engineStatsDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		busy := h.create(h.spec("stats-busy", "-spin"))
		idle := h.create(h.spec("stats-idle", ""))
		h.start(busy)
		h.start(idle)
		h.waitReady(h.client(busy))
		h.waitReady(h.client(idle))
		for _, dr := range []*Driver{d, viaEngine} {
			b0, i0 := stats(t, dr, busy), stats(t, dr, idle)
			var b1, i1 driver.Stats
			// At least a tenth of a CPU second of spinning, however loaded
			// the machine; the idle probe wakes only for its runtime.
			for deadline := time.Now().Add(time.Minute); ; {
				time.Sleep(500 * time.Millisecond)
				b1, i1 = stats(t, dr, busy), stats(t, dr, idle)
				if b1.CPUNanos-b0.CPUNanos >= 1e8 || time.Now().After(deadline) {
					break
				}
			}
			busyUsed, idleUsed := b1.CPUNanos-b0.CPUNanos, i1.CPUNanos-i0.CPUNanos
			t.Logf("%s (via engine: %v): busy used %v, idle %v", h.rt, dr.statsViaEngine, time.Duration(busyUsed), time.Duration(idleUsed))
			if busyUsed < 1e8 || busyUsed <= 2*idleUsed {
				t.Errorf("via engine %v: the spinning probe used %v of CPU, the idle one %v", dr.statsViaEngine, time.Duration(busyUsed), time.Duration(idleUsed))
			}
		}
	})
}

// TestStatsNetwork: a program with network "none" counts no bytes (its
// loopback traffic, the WatcherAPI's, is not counted); one with outbound
// network counts what it sends out. The probe dials TEST-NET-1
// (192.0.2.1, an address no one has): its SYNs leave through eth0 and
// reach no one.
func TestStatsNetwork(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		none := h.create(h.spec("stats-nonet", ""))
		spec := h.spec("stats-net", "")
		spec.Network = true
		egress := h.create(spec)
		h.start(none)
		h.start(egress)
		for _, id := range []string{none, egress} {
			pc := h.client(id)
			h.waitReady(pc)
			pc.probe(t, "/connect?addr="+url.QueryEscape("192.0.2.1:9"))
		}
		if st := stats(t, d, none); st.NetRxBytes != 0 || st.NetTxBytes != 0 {
			t.Errorf("network none: %d bytes in, %d out; want none (loopback is not counted)", st.NetRxBytes, st.NetTxBytes)
		}
		st := stats(t, d, egress)
		if st.NetTxBytes < 40 { // at least one SYN's IPv4 and TCP headers
			t.Errorf("outbound network: %d bytes out after a dial out", st.NetTxBytes)
		}
		t.Logf("%s: egress %d bytes in, %d out", h.rt, st.NetRxBytes, st.NetTxBytes)
	})
}

// TestStatsAfterRestart: a stopped container is ErrNotRunning (its cgroup
// folder may stay behind), and started again it is read afresh: the new
// process's counters.
func TestStatsAfterRestart(t *testing.T) {
	d := newDriver(t)
	forEachRuntime(t, d, func(t *testing.T, h *harness) {
		id := h.create(h.spec("stats-restart", ""))
		h.start(id)
		h.waitReady(h.client(id))
		first := stats(t, d, id)
		ctx := context.Background()
		// Stopped behind the driver's back (the engine's CLI would do the
		// same): the cache must not be trusted.
		secs := 1
		if err := d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Stats(ctx, id); !errors.Is(err, driver.ErrNotRunning) {
			t.Fatalf("Stats of a container stopped behind the driver's back: %v, want ErrNotRunning", err)
		}
		if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		h.waitReady(h.client(id))
		again := stats(t, d, id)
		if again.Pids < 1 || again.At.Before(first.At) {
			t.Errorf("after the restart: %+v (before %+v)", again, first)
		}
	})
}

// stats reads a container's stats, failing the test on an error.
func stats(t *testing.T, d *Driver, id string) driver.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := d.Stats(ctx, id)
	if err != nil {
		t.Fatalf("Stats(%.12s): %v", id, err)
	}
	return st
}

// engineStatsDriver is a second driver that always asks the engine's
// stats API.
func engineStatsDriver(t *testing.T) *Driver {
	d := newDriver(t)
	d.statsViaEngine = true
	return d
}

// cachedStats is the target Stats cached for a container.
func (d *Driver) cachedStats(id string) *statsTarget {
	tgt, _ := d.stats.get(id)
	return tgt
}

// waitLog waits until the container's output holds s.
func waitLog(t *testing.T, d *Driver, id, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rc, err := d.Logs(context.Background(), id, time.Time{}, false)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := rc.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		rc.Close()
		if strings.Contains(b.String(), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's output never held %q: %q", s, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
