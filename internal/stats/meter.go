package stats

import (
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// Reading is one raw measurement of a program: its container's usage as
// the driver read it, and what the Host knows of the program.
type Reading struct {
	// Container is the container read. Another container (a restart) has
	// counters of its own, started from zero.
	Container       string
	Usage           driver.Stats
	StateBytesUsed  int64
	StateBytesLimit int64
	Restarts        int
}

// Meter turns a program's successive readings into samples. The zero
// Meter is ready; it is not safe for concurrent use.
type Meter struct {
	last Reading
	have bool
}

// Next returns the sample reading r makes after the one before it. The
// CPU percent is the CPU time used between the two readings over the time
// between them. When the counter started again (another container, or the
// same container's new run: the CPU time went down), the CPU time used in
// the interval is at least all the new run's, which is what the sample
// shows. The sample's time is the reading's, in UTC to the millisecond
// (what a browser's clock resolves). There is no sample (false) for the first reading, which only sets
// the baseline, nor for one not read after the previous (a clock that went
// back): it becomes the new baseline.
func (m *Meter) Next(r Reading) (Sample, bool) {
	prev, had := m.last, m.have
	m.last, m.have = r, true
	if !had {
		return Sample{}, false
	}
	dt := r.Usage.At.Sub(prev.Usage.At)
	if dt <= 0 {
		return Sample{}, false
	}
	used := r.Usage.CPUNanos
	if r.Container == prev.Container && r.Usage.CPUNanos >= prev.Usage.CPUNanos {
		used -= prev.Usage.CPUNanos
	}
	return Sample{
		At:               r.Usage.At.UTC().Truncate(time.Millisecond),
		CPUPercent:       100 * float64(max(used, 0)) / float64(dt),
		MemoryBytes:      r.Usage.MemoryBytes,
		MemoryLimitBytes: r.Usage.MemoryLimitBytes,
		Pids:             r.Usage.Pids,
		NetRxBytes:       r.Usage.NetRxBytes,
		NetTxBytes:       r.Usage.NetTxBytes,
		StateBytesUsed:   r.StateBytesUsed,
		StateBytesLimit:  r.StateBytesLimit,
		Restarts:         r.Restarts,
	}, true
}

// Last is the latest reading, and whether there was one.
func (m *Meter) Last() (Reading, bool) { return m.last, m.have }

// Forget drops the baseline: the next reading sets a new one. The Host
// calls it when a program is not running, so the first reading of its next
// run is not measured against a reading from long ago.
func (m *Meter) Forget() { m.have = false }

// Bucket folds a program's fine samples into coarse ones, one per step
// (the samples whose times truncate to the same multiple of the step): the
// mean CPU percent; the highest memory, pids, /state usage and restart
// count, so a short spike or a restart between two coarse points still
// shows; the latest limits and network counters (cumulative already). A
// coarse sample is stamped with its step's start. The zero Bucket is
// empty; it is not safe for concurrent use.
type Bucket struct {
	start  time.Time
	n      int
	cpuSum float64
	agg    Sample
}

// Add adds a fine sample. When it falls in a later step than the samples
// before it, that step is over: its coarse sample is returned (true) and a
// new step begins with s. A sample from an earlier step than the open one
// (a clock that went back) counts in the open step: a coarse sample, once
// returned, is never changed.
func (b *Bucket) Add(s Sample, step time.Duration) (Sample, bool) {
	start := s.At.Truncate(step)
	var closed Sample
	var ok bool
	if b.n > 0 && start.After(b.start) {
		closed, ok = b.result(), true
		b.n = 0
	}
	if b.n == 0 {
		b.start, b.cpuSum, b.agg = start, 0, Sample{At: start}
	}
	b.n++
	b.cpuSum += s.CPUPercent
	a := &b.agg
	a.MemoryBytes = max(a.MemoryBytes, s.MemoryBytes)
	a.Pids = max(a.Pids, s.Pids)
	a.StateBytesUsed = max(a.StateBytesUsed, s.StateBytesUsed)
	a.Restarts = max(a.Restarts, s.Restarts)
	a.MemoryLimitBytes, a.StateBytesLimit = s.MemoryLimitBytes, s.StateBytesLimit
	a.NetRxBytes, a.NetTxBytes = s.NetRxBytes, s.NetTxBytes
	return closed, ok
}

// Flush closes the open step when it has ended by now (no later sample
// will fall in it) and returns its coarse sample.
func (b *Bucket) Flush(now time.Time, step time.Duration) (Sample, bool) {
	if b.n == 0 || now.Before(b.start.Add(step)) {
		return Sample{}, false
	}
	s := b.result()
	b.n = 0
	return s, true
}

// Open reports whether the bucket holds samples of a step not yet closed.
func (b *Bucket) Open() bool { return b.n > 0 }

func (b *Bucket) result() Sample {
	s := b.agg
	s.CPUPercent = b.cpuSum / float64(b.n)
	return s
}
