package fake

import (
	"context"
	"fmt"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// Usage is what a fake container's process uses beyond the memory its
// Program touched (Process.UseMemory): a test scripts it with SetUsage, a
// Program adds CPU time with Process.UseCPU. It belongs to one run of the
// container: a new start begins from zero, as a real engine's counters do.
type Usage struct {
	CPU        time.Duration // CPU time used so far
	Memory     int64         // bytes in use on top of what UseMemory touched
	Pids       int64         // tasks; 0 counts as 1 (the program itself)
	NetRxBytes int64         // bytes received and sent, loopback excluded
	NetTxBytes int64
}

// UseCPU adds d to the CPU time the process has used (Stats counts it).
func (p *Process) UseCPU(d time.Duration) {
	p.mu.Lock()
	p.usage.CPU += d
	p.mu.Unlock()
}

// SetUsage scripts what the running container id uses from now on (see
// Usage); Stats reports it. It is an error when the container does not
// exist or is not running.
func (d *Driver) SetUsage(id string, u Usage) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.lookup(id)
	if c == nil {
		return fmt.Errorf("fake: set usage %s: %w", id, driver.ErrNotFound)
	}
	if c.proc == nil {
		return fmt.Errorf("fake: set usage %s: %w", id, driver.ErrNotRunning)
	}
	p := c.proc
	p.mu.Lock()
	p.usage = u
	p.mu.Unlock()
	return nil
}

// Stats reports a running container's usage: the CPU time, memory, pids
// and network bytes SetUsage scripted (and UseCPU added), plus the memory
// its Program touched, against its spec's memory limit. driver.ErrNotFound
// for a missing container, driver.ErrNotRunning for a stopped one.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	call := Call{Method: "Stats", Ref: id}
	h, err := d.begin(ctx, call)
	if err != nil {
		return driver.Stats{}, err
	}
	var st driver.Stats
	d.mu.Lock()
	err = d.usableLocked("Stats")
	if err == nil {
		switch c := d.lookup(id); {
		case c == nil:
			err = fmt.Errorf("fake: stats %s: %w", id, driver.ErrNotFound)
		case c.proc == nil:
			err = fmt.Errorf("fake: stats %s: %w", id, driver.ErrNotRunning)
		default:
			p := c.proc
			p.mu.Lock()
			u, mem := p.usage, p.mem
			p.mu.Unlock()
			st = driver.Stats{
				At:               now(),
				CPUNanos:         u.CPU.Nanoseconds(),
				MemoryBytes:      mem + u.Memory,
				MemoryLimitBytes: c.limits.MemoryBytes,
				Pids:             max(u.Pids, 1),
				NetRxBytes:       u.NetRxBytes,
				NetTxBytes:       u.NetTxBytes,
			}
		}
	}
	d.mu.Unlock()
	if err = end(ctx, h, call, err); err != nil {
		return driver.Stats{}, err
	}
	return st, nil
}
