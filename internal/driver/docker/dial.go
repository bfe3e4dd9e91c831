package docker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/hershyorg/hershy/internal/procstat"
)

// nsTarget is the process whose network namespace DialContext enters for a
// container: the container's init (runc) or gVisor sandbox (runsc) process.
// It is cached per container id and trusted only while the same process
// (pid and kernel start time) still exists, so pid reuse cannot send a
// connection into another namespace.
type nsTarget struct {
	pid   int
	start uint64 // /proc/<pid>/stat field 22 (start time in clock ticks)
}

// DialContext connects to addr (an IP literal with a port, or
// "localhost:port") inside the container's own network namespace. No port
// is published and the container may have network "none": the connection
// is made from a thread that has joined the namespace (see dialInNS).
func (d *Driver) DialContext(ctx context.Context, containerID, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("docker: dial %s: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("docker: dial %s: an IP address is required (no name resolution inside the container's namespace)", addr)
	}
	addr = net.JoinHostPort(ip.String(), port)

	for attempt := 0; ; attempt++ {
		tgt, err := d.nsTargetOf(ctx, containerID)
		if err != nil {
			return nil, err
		}
		fd, err := openNetNS(tgt.pid)
		if err == nil {
			// The namespace opened must be that of the process we checked.
			if st, serr := procStart(tgt.pid); serr != nil || st != tgt.start {
				closeFD(fd)
				err = fmt.Errorf("process %d changed", tgt.pid)
			}
		}
		if err != nil {
			d.forget(containerID)
			if attempt == 0 {
				continue // the cached process may be gone: look again once
			}
			return nil, fmt.Errorf("docker: dial %s in container %s: %w", addr, containerID, err)
		}
		conn, err := dialInNS(ctx, fd, addr)
		if err != nil {
			return nil, fmt.Errorf("docker: dial %s in container %s: %w", addr, containerID, err)
		}
		return conn, nil
	}
}

// nsTargetOf returns the cached process of a container while it is still
// alive, or asks the engine and verifies the answer.
func (d *Driver) nsTargetOf(ctx context.Context, id string) (nsTarget, error) {
	if tgt, ok := d.ns.get(id); ok {
		if st, err := procStart(tgt.pid); err == nil && st == tgt.start {
			return tgt, nil
		}
		d.forget(id)
	}
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nsTarget{}, notFound(ctxErr(ctx, err), "dial into container", id)
	}
	if c.State == nil || !c.State.Running || c.State.Pid <= 0 {
		return nsTarget{}, fmt.Errorf("docker: dial into container %s: not running", id)
	}
	pid := c.State.Pid
	st, err := procStart(pid)
	if err != nil {
		return nsTarget{}, fmt.Errorf("docker: dial into container %s: process %d: %w", id, pid, err)
	}
	// Make sure the pid still is the container's: its cgroup path names the
	// container id (cgroup v1 and v2, cgroupfs and systemd drivers alike).
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil || !strings.Contains(string(cg), c.ID) {
		return nsTarget{}, fmt.Errorf("docker: dial into container %s: process %d is not in the container's cgroup (did it just exit?)", id, pid)
	}
	tgt := nsTarget{pid: pid, start: st}
	d.ns.put(id, c.ID, tgt)
	return tgt, nil
}

// forget drops what is cached about a container (by id or prefix): its
// process for dials and its files for Stats.
func (d *Driver) forget(id string) {
	d.ns.forget(id)
	d.stats.forget(id)
}

// procStart reads a process's start time, which tells it apart from a later
// process with the same pid.
func procStart(pid int) (uint64, error) {
	f, err := procstat.Fields(pid)
	if err != nil {
		return 0, err
	}
	start, ok := procstat.Field(f, 22)
	if !ok {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(start, 10, 64)
}
