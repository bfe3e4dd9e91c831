package stats

import (
	"math"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// reading is a reading of container c at t0+d with cpu of CPU time.
func reading(c string, d, cpu time.Duration) Reading {
	return Reading{Container: c, Usage: driver.Stats{At: at(d), CPUNanos: cpu.Nanoseconds(), MemoryBytes: 100, MemoryLimitBytes: 1000, Pids: 3, NetRxBytes: 7, NetTxBytes: 9}, StateBytesUsed: 4096, StateBytesLimit: 8192, Restarts: 2}
}

func TestMeterCPUPercent(t *testing.T) {
	type step struct {
		r    Reading
		want float64 // -1: no sample
	}
	for name, steps := range map[string][]step{
		"the first reading is a baseline": {
			{reading("a", 0, time.Hour), -1},
		},
		"half a core": {
			{reading("a", 0, time.Second), -1},
			{reading("a", 10*time.Second, 6*time.Second), 50},
			{reading("a", 20*time.Second, 6*time.Second), 0},
			{reading("a", 30*time.Second, 21*time.Second), 150}, // one and a half cores
		},
		"a new container starts from zero": {
			{reading("a", 0, 50*time.Second), -1},
			{reading("b", 10*time.Second, 2*time.Second), 20}, // not (2-50)/10
			{reading("b", 20*time.Second, 3*time.Second), 10},
		},
		"the same container's counter went back (a new run)": {
			{reading("a", 0, 50*time.Second), -1},
			{reading("a", 10*time.Second, time.Second), 10},
		},
		"a reading not after the previous is a new baseline": {
			{reading("a", 10*time.Second, time.Second), -1},
			{reading("a", 10*time.Second, 2*time.Second), -1},
			{reading("a", 5*time.Second, 3*time.Second), -1},
			{reading("a", 15*time.Second, 8*time.Second), 50},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var m Meter
			for i, s := range steps {
				got, ok := m.Next(s.r)
				if s.want < 0 {
					if ok {
						t.Errorf("step %d: a sample %+v, want none", i, got)
					}
					continue
				}
				if !ok {
					t.Fatalf("step %d: no sample, want %v%%", i, s.want)
				}
				if math.Abs(got.CPUPercent-s.want) > 1e-9 {
					t.Errorf("step %d: %v%%, want %v%%", i, got.CPUPercent, s.want)
				}
				want := Sample{At: s.r.Usage.At, CPUPercent: got.CPUPercent, MemoryBytes: 100, MemoryLimitBytes: 1000, Pids: 3, NetRxBytes: 7, NetTxBytes: 9, StateBytesUsed: 4096, StateBytesLimit: 8192, Restarts: 2}
				if got != want {
					t.Errorf("step %d: %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

func TestMeterForget(t *testing.T) {
	var m Meter
	m.Next(reading("a", 0, 0))
	m.Forget()
	if s, ok := m.Next(reading("a", time.Hour, time.Second)); ok {
		t.Errorf("after Forget: a sample %+v measured against the old baseline", s)
	}
	if s, ok := m.Next(reading("a", time.Hour+10*time.Second, 6*time.Second)); !ok || s.CPUPercent != 50 {
		t.Errorf("next: %+v, %v", s, ok)
	}
}

// fine is a fine sample at t0+d.
func fine(d time.Duration, cpu float64, mem, pids int64, rx int64, restarts int) Sample {
	return Sample{At: at(d), CPUPercent: cpu, MemoryBytes: mem, MemoryLimitBytes: 1000, Pids: pids, NetRxBytes: rx, NetTxBytes: 2 * rx, StateBytesUsed: mem / 10, StateBytesLimit: 500, Restarts: restarts}
}

func TestBucketDownsampling(t *testing.T) {
	const step = time.Minute
	for name, c := range map[string]struct {
		in    []Sample
		flush time.Duration // Flush at t0+flush after the samples (0: none)
		want  []Sample
	}{
		"one step: mean CPU, highest levels, latest counters and limits": {
			in: []Sample{
				fine(0, 10, 100, 3, 5, 0),
				fine(10*time.Second, 30, 300, 2, 6, 1),
				fine(50*time.Second, 20, 200, 4, 9, 1),
				fine(60*time.Second, 99, 1, 1, 10, 0), // the next step begins
			},
			want: []Sample{{At: at(0), CPUPercent: 20, MemoryBytes: 300, MemoryLimitBytes: 1000, Pids: 4, NetRxBytes: 9, NetTxBytes: 18, StateBytesUsed: 30, StateBytesLimit: 500, Restarts: 1}},
		},
		"steps are aligned to the clock, not to the first sample": {
			in: []Sample{
				fine(45*time.Second, 10, 100, 1, 0, 0),
				fine(55*time.Second, 30, 100, 1, 0, 0),
				fine(65*time.Second, 50, 100, 1, 0, 0),
			},
			want: []Sample{{At: at(0), CPUPercent: 20, MemoryBytes: 100, MemoryLimitBytes: 1000, Pids: 1, StateBytesUsed: 10, StateBytesLimit: 500}},
		},
		"a gap of several steps closes the open one only": {
			in: []Sample{
				fine(0, 10, 100, 1, 0, 0),
				fine(10*time.Minute, 30, 100, 1, 0, 0),
			},
			want: []Sample{{At: at(0), CPUPercent: 10, MemoryBytes: 100, MemoryLimitBytes: 1000, Pids: 1, StateBytesUsed: 10, StateBytesLimit: 500}},
		},
		"a flush before the step ends closes nothing": {
			in:    []Sample{fine(0, 10, 100, 1, 0, 0)},
			flush: 59 * time.Second,
		},
		"a flush once the step has ended closes it": {
			in:    []Sample{fine(0, 10, 100, 1, 0, 0), fine(30*time.Second, 20, 100, 1, 0, 0)},
			flush: time.Minute,
			want:  []Sample{{At: at(0), CPUPercent: 15, MemoryBytes: 100, MemoryLimitBytes: 1000, Pids: 1, StateBytesUsed: 10, StateBytesLimit: 500}},
		},
		"a sample from before the open step counts in it": {
			in: []Sample{
				fine(70*time.Second, 10, 100, 1, 0, 0),
				fine(50*time.Second, 30, 500, 1, 0, 0), // the clock went back
				fine(130*time.Second, 0, 0, 0, 0, 0),
			},
			want: []Sample{{At: at(time.Minute), CPUPercent: 20, MemoryBytes: 500, MemoryLimitBytes: 1000, Pids: 1, StateBytesUsed: 50, StateBytesLimit: 500}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var b Bucket
			var got []Sample
			for _, s := range c.in {
				if out, ok := b.Add(s, step); ok {
					got = append(got, out)
				}
			}
			if c.flush > 0 {
				if out, ok := b.Flush(at(c.flush), step); ok {
					got = append(got, out)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("coarse samples %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("coarse sample %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestBucketFlushEmpties(t *testing.T) {
	var b Bucket
	if _, ok := b.Flush(at(time.Hour), time.Minute); ok {
		t.Error("an empty bucket flushed a sample")
	}
	b.Add(fine(0, 10, 1, 1, 0, 0), time.Minute)
	if !b.Open() {
		t.Error("a bucket with a sample is not open")
	}
	if _, ok := b.Flush(at(time.Minute), time.Minute); !ok {
		t.Fatal("no flush after the step")
	}
	if _, ok := b.Flush(at(time.Hour), time.Minute); ok || b.Open() {
		t.Error("a step was flushed twice")
	}
}

func TestPolicyCheck(t *testing.T) {
	for name, c := range map[string]struct {
		p  Policy
		ok bool
	}{
		"default":                          {DefaultPolicy, true},
		"zero fine step":                   {Policy{0, time.Hour, time.Minute, time.Hour}, false},
		"fine kept less than a step":       {Policy{time.Minute, time.Second, time.Minute, time.Hour}, false},
		"coarse not a multiple of fine":    {Policy{7 * time.Second, time.Hour, time.Minute, 24 * time.Hour}, false},
		"coarse kept shorter than fine":    {Policy{time.Second, time.Hour, time.Minute, time.Minute}, false},
		"one step each, coarse equal fine": {Policy{time.Second, time.Second, time.Second, time.Second}, true},
	} {
		if err := c.p.Check(); (err == nil) != c.ok {
			t.Errorf("%s: Check() = %v, want ok %v", name, err, c.ok)
		}
	}
}

// TestWindow: the retention bounds of a query and the resolution it
// reads when none is asked for.
func TestWindow(t *testing.T) {
	p := DefaultPolicy
	now := at(48 * time.Hour)
	for name, c := range map[string]struct {
		since     time.Time
		res       Resolution
		wantRes   Resolution
		wantSince time.Time
	}{
		"nothing asked: the fine hour":              {time.Time{}, "", Fine, now.Add(-time.Hour)},
		"the last 10 minutes":                       {now.Add(-10 * time.Minute), "", Fine, now.Add(-10 * time.Minute)},
		"the last hour, asked a moment ago":         {now.Add(-time.Hour - time.Millisecond), "", Fine, now.Add(-time.Hour)},
		"two hours: coarse":                         {now.Add(-2 * time.Hour), "", Coarse, now.Add(-2 * time.Hour)},
		"a week: coarse, clamped to its day":        {now.Add(-7 * 24 * time.Hour), "", Coarse, now.Add(-24 * time.Hour)},
		"fine asked for a day: clamped to its hour": {now.Add(-24 * time.Hour), Fine, Fine, now.Add(-time.Hour)},
		"coarse asked for the last minute":          {now.Add(-time.Minute), Coarse, Coarse, now.Add(-time.Minute)},
		"coarse, nothing else asked":                {time.Time{}, Coarse, Coarse, now.Add(-24 * time.Hour)},
		"since in the future is kept":               {now.Add(time.Hour), "", Fine, now.Add(time.Hour)},
	} {
		r, since := p.Window(now, c.since, c.res)
		if r != c.wantRes || !since.Equal(c.wantSince) {
			t.Errorf("%s: Window = %s, %v; want %s, %v", name, r, since, c.wantRes, c.wantSince)
		}
	}
}

func TestParseResolution(t *testing.T) {
	for _, s := range []string{"fine", "coarse"} {
		if r, err := ParseResolution(s); err != nil || string(r) != s {
			t.Errorf("ParseResolution(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Fine", "1m", "raw"} {
		if _, err := ParseResolution(s); err == nil {
			t.Errorf("ParseResolution(%q) accepted", s)
		}
	}
}
