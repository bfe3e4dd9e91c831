package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/mountinfo"
)

// Stats reads a running container's usage from the kernel's files, not
// from the engine: the Host samples up to a thousand containers every few
// seconds, and the engine's stats API costs a round trip through dockerd
// and containerd's shim (and under runsc a runsc process) per container,
// where the files cost a few reads. What the files need (the container's
// cgroup folders and its init process) is looked up once per container run
// with an inspect and cached (statsTarget).
//
// The figures are the container's cgroup's: CPU time (cpuacct.usage under
// cgroup v1, cpu.stat's usage_usec under v2), the working set (usage less
// the inactive file cache: memory.usage_in_bytes and memory.stat's
// total_inactive_file, or memory.current and inactive_file), the memory
// limit and pids.current. The cgroup of a runsc container holds gVisor's
// whole sandbox, so its figures include the sandbox's own memory and
// threads, which the limit covers too. Network bytes are the interfaces
// of the container's network namespace but loopback
// (/proc/<init pid>/net/dev), read only for a container with a network.
//
// Where the files are not found (another cgroup layout, a Host in a
// container of its own), Stats asks the engine's one-shot stats API.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	for attempt := 0; ; attempt++ {
		tgt, err := d.statsTargetOf(ctx, id)
		if err != nil {
			return driver.Stats{}, err
		}
		if tgt.viaEngine {
			return d.engineStats(ctx, id)
		}
		st, err := tgt.read()
		if err == nil {
			return st, nil
		}
		// The container stopped (its cgroup went or emptied), or it was
		// started again (a new init process): look it up again, once.
		d.stats.forget(id)
		if attempt == 0 {
			continue
		}
		if errors.Is(err, errStopped) || errors.Is(err, fs.ErrNotExist) {
			return driver.Stats{}, fmt.Errorf("docker: stats of container %s: %w (%v)", id, driver.ErrNotRunning, err)
		}
		// Found, running, and still unreadable (permissions, a format
		// this driver does not know): the engine's API for this run.
		fallback := *tgt // a copy: others may be reading tgt
		fallback.viaEngine = true
		d.stats.put(id, id, &fallback)
		return d.engineStats(ctx, id)
	}
}

// statsTarget is where a container run's usage is read.
type statsTarget struct {
	pid   int
	start uint64 // the init process's start time (procStart): a reused pid is never read
	v2    bool
	// The files: cpuacct.usage or cpu.stat; memory.usage_in_bytes or
	// memory.current; memory.stat; memory.limit_in_bytes or memory.max;
	// pids.current.
	cpu, memUsage, memStat, memLimit, pids string
	// network: read /proc/<pid>/net/dev (a container with network "none"
	// has only loopback, which is not counted).
	network bool
	// viaEngine: the files are not where this machine's cgroup mounts say.
	viaEngine bool
}

// errStopped is a target's read failing because the run it describes has
// ended.
var errStopped = errors.New("the container's process is gone")

// read reads the target's files now.
func (t *statsTarget) read() (driver.Stats, error) {
	bp := statBufs.Get().(*[]byte)
	defer statBufs.Put(bp)
	buf := *bp
	st := driver.Stats{At: time.Now()}

	// pids first: an empty cgroup is a run that has ended (the folder of a
	// stopped container may stay behind).
	pids, err := readInt(t.pids, buf)
	if err != nil {
		return st, err
	}
	if pids == 0 {
		return st, errStopped
	}
	st.Pids = pids
	if t.v2 {
		b, err := readFile(t.cpu, buf)
		if err != nil {
			return st, err
		}
		usec, ok := statField(b, "usage_usec")
		if !ok {
			return st, fmt.Errorf("%s: no usage_usec", t.cpu)
		}
		st.CPUNanos = usec * 1000
	} else if st.CPUNanos, err = readInt(t.cpu, buf); err != nil {
		return st, err
	}
	usage, err := readInt(t.memUsage, buf)
	if err != nil {
		return st, err
	}
	b, err := readFile(t.memStat, buf)
	if err != nil {
		return st, err
	}
	inactive, _ := statField(b, inactiveFileKey(t.v2))
	st.MemoryBytes = max(usage-inactive, 0)
	if st.MemoryLimitBytes, err = readLimit(t.memLimit, buf); err != nil {
		return st, err
	}
	if t.network {
		if st.NetRxBytes, st.NetTxBytes, err = t.readNet(buf); err != nil {
			return st, err
		}
	}
	return st, nil
}

// readNet sums the container's interfaces but loopback, after checking
// that the pid is still the container's init.
func (t *statsTarget) readNet(buf []byte) (rx, tx int64, err error) {
	proc := "/proc/" + strconv.Itoa(t.pid)
	b, err := readFile(proc+"/net/dev", buf)
	if err != nil {
		return 0, 0, err
	}
	// Checked after the read: had the pid died and been reused before it,
	// the start time now differs.
	if st, err := procStart(t.pid); err != nil || st != t.start {
		return 0, 0, errStopped
	}
	return parseNetDev(b)
}

// inactiveFileKey is memory.stat's count of the reclaimable file cache:
// under v1 the hierarchical total (the container's cgroup may have
// children), under v2 a cgroup's figures include its children's.
func inactiveFileKey(v2 bool) string {
	if v2 {
		return "inactive_file"
	}
	return "total_inactive_file"
}

// statBufs are read buffers: memory.stat, the largest file read, holds
// about 1.5 KiB.
var statBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// readInt reads a file holding one integer.
func readInt(name string, buf []byte) (int64, error) {
	b, err := readFile(name, buf)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// noLimit is where cgroup v1 reports "no limit" (the largest page-aligned
// int64); anything above it is no limit either.
const noLimit = 1 << 62

// readLimit reads a memory limit: "max" (v2) and v1's huge number mean
// none (0).
func readLimit(name string, buf []byte) (int64, error) {
	b, err := readFile(name, buf)
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if n >= noLimit {
		return 0, nil
	}
	return int64(n), nil
}

// statField finds "key value" in a flat-keyed file (memory.stat, cpu.stat).
func statField(b []byte, key string) (int64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if ok && string(k) == key {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// parseNetDev sums the received and sent bytes of /proc/net/dev's
// interfaces, loopback excluded.
func parseNetDev(b []byte) (rx, tx int64, err error) {
	for n := 0; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if n < 2 { // the two header lines
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return 0, 0, fmt.Errorf("net/dev: malformed line %q", line)
		}
		if string(bytes.TrimSpace(name)) == "lo" {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 16 {
			return 0, 0, fmt.Errorf("net/dev: malformed line %q", line)
		}
		r, err1 := strconv.ParseInt(string(f[0]), 10, 64)
		t, err2 := strconv.ParseInt(string(f[8]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("net/dev: %w", err)
		}
		rx += r
		tx += t
	}
	return rx, tx, nil
}

// statsTargetOf returns the cached target of a container, or inspects it
// and finds its files.
func (d *Driver) statsTargetOf(ctx context.Context, id string) (*statsTarget, error) {
	if tgt, ok := d.stats.get(id); ok {
		return tgt, nil
	}
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, notFound(ctxErr(ctx, err), "stats of container", id)
	}
	if c.State == nil || !c.State.Running || c.State.Pid <= 0 {
		return nil, fmt.Errorf("docker: stats of container %s: %w", id, driver.ErrNotRunning)
	}
	tgt := &statsTarget{pid: c.State.Pid}
	if c.HostConfig != nil {
		tgt.network = c.HostConfig.NetworkMode != "none"
	}
	if d.statsViaEngine {
		tgt.viaEngine = true
	} else if err := tgt.locate(c.ID, cgroupMountsOnce()); err != nil {
		// A process that is no longer the container's (it just exited)
		// says nothing of where its files are: that is not the layout's
		// fault, so the next call looks again.
		if errors.Is(err, errStopped) {
			return nil, fmt.Errorf("docker: stats of container %s: %w (%v)", id, driver.ErrNotRunning, err)
		}
		tgt.viaEngine = true
	}
	d.stats.put(id, c.ID, tgt)
	return tgt, nil
}

// locate finds the target's files from its init process's cgroups and
// this machine's cgroup mounts; an error means they cannot be read here.
func (t *statsTarget) locate(containerID string, mounts cgroupMounts) error {
	proc := "/proc/" + strconv.Itoa(t.pid)
	st, err := procStart(t.pid)
	if err != nil {
		return fmt.Errorf("%w: %v", errStopped, err)
	}
	t.start = st
	b, err := os.ReadFile(proc + "/cgroup")
	if err != nil {
		return fmt.Errorf("%w: %v", errStopped, err)
	}
	// The cgroup path names the container (cgroupfs and systemd drivers,
	// v1 and v2): otherwise the pid is not the container's any more.
	if !bytes.Contains(b, []byte(containerID)) {
		return fmt.Errorf("%w: process %d is not in the container's cgroup", errStopped, t.pid)
	}
	paths := parseProcCgroup(b)
	dir := func(controller string) (string, bool) {
		m, ok := mounts[controller]
		if !ok {
			return "", false
		}
		p, ok := paths[controller]
		if !ok {
			return "", false
		}
		return m.path(p)
	}
	if mem, ok := dir("memory"); ok {
		cpu, okc := dir("cpuacct")
		pids, okp := dir("pids")
		if !okc || !okp {
			return errors.New("cgroup v1 without cpuacct or pids")
		}
		t.cpu = filepath.Join(cpu, "cpuacct.usage")
		t.memUsage = filepath.Join(mem, "memory.usage_in_bytes")
		t.memStat = filepath.Join(mem, "memory.stat")
		t.memLimit = filepath.Join(mem, "memory.limit_in_bytes")
		t.pids = filepath.Join(pids, "pids.current")
	} else if dir, ok := dir(""); ok {
		t.v2 = true
		t.cpu = filepath.Join(dir, "cpu.stat")
		t.memUsage = filepath.Join(dir, "memory.current")
		t.memStat = filepath.Join(dir, "memory.stat")
		t.memLimit = filepath.Join(dir, "memory.max")
		t.pids = filepath.Join(dir, "pids.current")
	} else {
		return errors.New("no cgroup memory controller found")
	}
	for _, f := range []string{t.cpu, t.memUsage, t.memStat, t.memLimit, t.pids} {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	return nil
}

// cgroupMount is where a cgroup hierarchy is mounted, and which of its
// folders the mount shows at its root.
type cgroupMount struct {
	dir  string // the mount point
	root string // the hierarchy's path at the mount point ("/" unless namespaced or bind-mounted)
}

// path is where the hierarchy's folder p lies on this machine; false when
// the mount does not show it.
func (m cgroupMount) path(p string) (string, bool) {
	rel, ok := strings.CutPrefix(p, m.root)
	if !ok || (m.root != "/" && rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", false
	}
	return filepath.Join(m.dir, rel), true
}

// cgroupMounts maps each cgroup v1 controller ("memory", "cpuacct",
// "pids", ...) to its mount, and "" to the v2 (unified) hierarchy's.
type cgroupMounts map[string]cgroupMount

var (
	cgroupMountsMu   sync.Mutex
	cgroupMountsSeen cgroupMounts
)

// cgroupMountsOnce reads this machine's cgroup mounts on first use.
func cgroupMountsOnce() cgroupMounts {
	cgroupMountsMu.Lock()
	defer cgroupMountsMu.Unlock()
	if cgroupMountsSeen == nil {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return cgroupMounts{} // nothing found: the engine's API it is
		}
		cgroupMountsSeen = parseMountInfo(b)
	}
	return cgroupMountsSeen
}

// parseMountInfo finds the cgroup mounts in /proc/self/mountinfo: fields
// 4 and 5 are the mount's root and mount point, then after " - " the
// filesystem type and source and the super block options, which name a v1
// hierarchy's controllers. The first mount of each hierarchy wins.
func parseMountInfo(b []byte) cgroupMounts {
	out := cgroupMounts{}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		m := cgroupMount{root: mountinfo.Unescape(f[3]), dir: mountinfo.Unescape(f[4])}
		switch g[0] {
		case "cgroup2":
			if _, ok := out[""]; !ok {
				out[""] = m
			}
		case "cgroup":
			for _, opt := range strings.Split(g[2], ",") {
				switch opt {
				case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "noprefix", "xattr":
					continue
				}
				if strings.Contains(opt, "=") { // name=systemd, release_agent=...
					continue
				}
				if _, ok := out[opt]; !ok {
					out[opt] = m
				}
			}
		}
	}
	return out
}

// parseProcCgroup maps each v1 controller of /proc/<pid>/cgroup
// ("4:memory:/docker/<id>", "2:cpu,cpuacct:/...") to its path, and "" to
// the v2 path ("0::/...").
func parseProcCgroup(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// engineStats asks the engine's one-shot stats API (no wait for a second
// sample): the fallback where the files cannot be read.
func (d *Driver) engineStats(ctx context.Context, id string) (driver.Stats, error) {
	resp, err := d.cli.ContainerStatsOneShot(ctx, id)
	if err != nil {
		d.stats.forget(id)
		return driver.Stats{}, notFound(ctxErr(ctx, err), "stats of container", id)
	}
	defer resp.Body.Close()
	var s engineStatsBody
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return driver.Stats{}, fmt.Errorf("docker: stats of container %s: %w", id, ctxErr(ctx, err))
	}
	st, err := s.stats()
	if errors.Is(err, errStopped) {
		d.stats.forget(id)
		return driver.Stats{}, fmt.Errorf("docker: stats of container %s: %w", id, driver.ErrNotRunning)
	}
	return st, err
}

// engineStatsBody is the part of the engine's stats answer Stats reads.
type engineStatsBody struct {
	Read      time.Time `json:"read"`
	PidsStats struct {
		Current int64 `json:"current"`
	} `json:"pids_stats"`
	CPUStats struct {
		CPUUsage struct {
			TotalUsage int64 `json:"total_usage"` // nanoseconds, under v1 and v2
		} `json:"cpu_usage"`
	} `json:"cpu_stats"`
	MemoryStats struct {
		Usage int64            `json:"usage"`
		Limit int64            `json:"limit"`
		Stats map[string]int64 `json:"stats"`
	} `json:"memory_stats"`
	Networks map[string]struct {
		RxBytes int64 `json:"rx_bytes"`
		TxBytes int64 `json:"tx_bytes"`
	} `json:"networks"`
}

// stats converts the engine's answer; a stopped container's answer is all
// zeros (the engine reports no error), which is errStopped.
func (s engineStatsBody) stats() (driver.Stats, error) {
	if s.Read.Year() <= 1 {
		return driver.Stats{}, errStopped
	}
	inactive, ok := s.MemoryStats.Stats["total_inactive_file"] // v1
	if !ok {
		inactive = s.MemoryStats.Stats["inactive_file"] // v2
	}
	st := driver.Stats{
		At:               s.Read,
		CPUNanos:         s.CPUStats.CPUUsage.TotalUsage,
		MemoryBytes:      max(s.MemoryStats.Usage-inactive, 0),
		MemoryLimitBytes: s.MemoryStats.Limit,
		Pids:             s.PidsStats.Current,
	}
	if st.MemoryLimitBytes >= noLimit {
		st.MemoryLimitBytes = 0
	}
	for name, n := range s.Networks {
		if name != "lo" {
			st.NetRxBytes += n.RxBytes
			st.NetTxBytes += n.TxBytes
		}
	}
	return st, nil
}
