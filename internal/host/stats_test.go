package host_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/stats"
)

// The resource history, on the fake engine in synctest bubbles: the
// sampler's rounds fall every fine step of the bubble's clock from the
// Host's opening, and the test scripts each container's usage
// (fake.Driver.SetUsage) between two rounds.

// midStep sleeps until the middle of the sampler's next step after t0
// (when the Host opened): usage set then is what the next round reads.
func midStep(t0 time.Time, step time.Duration) {
	off := time.Since(t0) % step
	wait := step/2 - off
	if wait <= 0 {
		wait += step
	}
	time.Sleep(wait)
	synctest.Wait()
}

// nextRound lets one sampling round happen and settle.
func nextRound(step time.Duration) {
	time.Sleep(step)
	synctest.Wait()
}

// samplesOf is a program's stored samples of resolution r.
func samplesOf(t *testing.T, h *host.Host, id string, r stats.Resolution) []stats.Sample {
	t.Helper()
	got, err := h.StoredStats(context.Background(), id, r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// collector keeps what SubscribeStats delivers.
type collector struct {
	mu  sync.Mutex
	got map[string][]stats.Sample
}

func collect(h *host.Host) (*collector, func()) {
	c := &collector{got: map[string][]stats.Sample{}}
	cancel := h.SubscribeStats(func(ps host.ProgramSample) {
		c.mu.Lock()
		c.got[ps.ProgramID] = append(c.got[ps.ProgramID], ps.Sample)
		c.mu.Unlock()
	})
	return c, cancel
}

func (c *collector) of(id string) []stats.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got[id])
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// sameSamples compares two series (times by Equal).
func sameSamples(a, b []stats.Sample) bool {
	return slices.EqualFunc(a, b, func(x, y stats.Sample) bool {
		at := x.At.Equal(y.At)
		x.At, y.At = time.Time{}, time.Time{}
		return at && x == y
	})
}

// TestStatsSampling: a running program's samples accumulate a fine step
// apart with the CPU percent of what it used in each step, its memory,
// pids and network against its limits; the subscribers get each one once
// it is stored; coarse samples sum up a minute of fine ones. A program
// never started has no history, a stopped one none after its stop, and
// neither has a latest reading.
func TestStatsSampling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		t0 := time.Now()
		h := d.Open(t, t.TempDir())
		pol := h.StatsPolicy()
		ctx := context.Background()
		sub, cancel := collect(h)
		defer cancel()

		running := createProgram(t, h, dockerfileProgram("alice", "1"))
		never := createProgram(t, h, dockerfileProgram("alice", "2"))
		stopped := createProgram(t, h, dockerfileProgram("bob", "3"))
		startProgram(t, h, running)
		startProgram(t, h, stopped)
		row := settle(t, h, running, lifecycle.Ready)
		settle(t, h, stopped, lifecycle.Ready)
		if _, err := h.Stop(ctx, stopped); err != nil {
			t.Fatal(err)
		}
		settle(t, h, stopped, lifecycle.Stopped)
		stoppedAt := time.Now()
		stoppedBefore := len(samplesOf(t, h, stopped, stats.Fine))

		// Each step the program uses a quarter of a core more and one MiB
		// more memory.
		midStep(t0, pol.FineStep)
		nextRound(pol.FineStep) // a first reading, at least: the baseline
		const steps = 15
		before := len(samplesOf(t, h, running, stats.Fine))
		for k := int64(1); k <= steps; k++ {
			u := fake.Usage{CPU: time.Duration(k) * 2500 * time.Millisecond, Memory: k << 20, Pids: 5, NetRxBytes: 100 * k, NetTxBytes: 10 * k}
			if err := d.SetUsage(row.ContainerID, u); err != nil {
				t.Fatal(err)
			}
			nextRound(pol.FineStep)
		}

		fine := samplesOf(t, h, running, stats.Fine)
		if len(fine) != before+steps {
			t.Fatalf("%d fine samples after %d more steps, want %d", len(fine), steps, before+steps)
		}
		for i, s := range fine[before:] {
			k := int64(i + 1)
			want := stats.Sample{At: s.At, CPUPercent: 25, MemoryBytes: k << 20, MemoryLimitBytes: host.DefaultLimits.MemoryBytes,
				Pids: 5, NetRxBytes: 100 * k, NetTxBytes: 10 * k}
			if !near(s.CPUPercent, 25) {
				t.Errorf("step %d: cpu %v%%, want 25%%", k, s.CPUPercent)
			}
			want.CPUPercent = s.CPUPercent
			if s != want {
				t.Errorf("step %d: %+v, want %+v", k, s, want)
			}
			if i > 0 && s.At.Sub(fine[before+i-1].At) != pol.FineStep {
				t.Errorf("step %d: %v after the previous sample, want %v", k, s.At.Sub(fine[before+i-1].At), pol.FineStep)
			}
		}
		if got := sub.of(running); !sameSamples(got, fine) {
			t.Errorf("subscribers got %d samples, the store holds %d:\n%+v\n%+v", len(got), len(fine), got, fine)
		}

		// Each coarse sample sums up its minute's fine samples.
		coarse := samplesOf(t, h, running, stats.Coarse)
		if len(coarse) < 2 {
			t.Fatalf("%d coarse samples after %v", len(coarse), time.Since(t0))
		}
		for _, c := range coarse {
			var sum float64
			var n int
			var mem int64
			for _, f := range fine {
				if !f.At.Before(c.At) && f.At.Before(c.At.Add(pol.CoarseStep)) {
					sum, n, mem = sum+f.CPUPercent, n+1, max(mem, f.MemoryBytes)
				}
			}
			if n == 0 || !near(c.CPUPercent, sum/float64(n)) || c.MemoryBytes != mem || !c.At.Truncate(pol.CoarseStep).Equal(c.At) {
				t.Errorf("coarse sample %+v; its minute's %d fine samples: mean cpu %v, highest memory %d", c, n, sum/float64(n), mem)
			}
		}

		if got := samplesOf(t, h, never, stats.Fine); len(got) != 0 {
			t.Errorf("a program never started has samples: %+v", got)
		}
		got := samplesOf(t, h, stopped, stats.Fine)
		if len(got) != stoppedBefore {
			t.Errorf("a stopped program gained samples: %d, then %d", stoppedBefore, len(got))
		}
		for _, s := range got {
			if s.At.After(stoppedAt) {
				t.Errorf("a sample of a stopped program after its stop: %+v", s)
			}
		}
		if u := h.LatestUsage(); len(u) != 1 || u[0].ProgramID != running || u[0].ContainerID != row.ContainerID || u[0].Usage.CPUNanos != int64(steps)*2500*1e6 {
			t.Errorf("latest readings: %+v, want the running program's only", u)
		}

		// The API's reads: the window of the last minute, fine.
		r, last, err := h.StatsHistory(ctx, running, "", time.Now().Add(-time.Minute))
		if err != nil || r != stats.Fine || len(last) != 6 {
			t.Errorf("the last minute: %s, %d samples, %v; want fine, 6", r, len(last), err)
		}
		if _, _, err := h.StatsHistory(ctx, "p-nosuchprogram", "", time.Time{}); !errors.Is(err, host.ErrNotFound) {
			t.Errorf("history of an unknown program: %v", err)
		}
	})
}

// TestStatsAfterRestart: a program restarted by its policy runs in a new
// container whose counters start from zero: the first sample measures
// the new counter (not a negative difference), and samples show the
// restart count.
func TestStatsAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		t0 := time.Now()
		h := d.Open(t, t.TempDir())
		pol := h.StatsPolicy()
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		startProgram(t, h, id)
		first := settle(t, h, id, lifecycle.Ready)
		midStep(t0, pol.FineStep)
		if err := d.SetUsage(first.ContainerID, fake.Usage{CPU: time.Hour}); err != nil {
			t.Fatal(err)
		}
		nextRound(pol.FineStep)
		if err := d.Exit(first.ContainerID, 1); err != nil {
			t.Fatal(err)
		}
		second := settle(t, h, id, lifecycle.Ready)
		if second.ContainerID == first.ContainerID || second.RestartCount != 1 {
			t.Fatalf("after the exit: %+v", second)
		}
		// Still within the step of the last reading of the old container
		// (an hour of CPU): the new one has used a second when the next
		// round reads it, a tenth of the step.
		before := len(samplesOf(t, h, id, stats.Fine))
		if err := d.SetUsage(second.ContainerID, fake.Usage{CPU: time.Second}); err != nil {
			t.Fatal(err)
		}
		nextRound(pol.FineStep)
		fine := samplesOf(t, h, id, stats.Fine)
		if len(fine) != before+1 {
			t.Fatalf("%d samples, want %d", len(fine), before+1)
		}
		last := fine[len(fine)-1]
		if !near(last.CPUPercent, 10) || last.Restarts != 1 {
			t.Errorf("the first sample after a restart: %+v, want 10%% (the new run's second over the step) and 1 restart", last)
		}
		for _, s := range fine {
			if s.CPUPercent < 0 {
				t.Errorf("a negative CPU percent: %+v", s)
			}
		}
	})
}

// TestStatsSurviveRestart: the history is in the store: a Host opened on
// the same data directory serves what the previous one sampled, and the
// coarse step the restart cut in two sums up the fine samples of both
// Hosts (the new Host folds the stored ones it had not summed up yet).
func TestStatsSurviveRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		dir := t.TempDir()
		t0 := time.Now()
		if t0.Truncate(time.Minute) != t0 {
			t.Fatalf("the bubble's clock starts at %v, not on a minute", t0)
		}
		h1 := d.Open(t, dir)
		pol := h1.StatsPolicy()
		id := createProgram(t, h1, dockerfileProgram("alice", "1"))
		startProgram(t, h1, id)
		row := settle(t, h1, id, lifecycle.Ready)
		// Half a core from here on, read at 10 s, 20 s and 30 s.
		midStep(t0, pol.FineStep)
		cpu := time.Duration(0)
		for range 3 {
			cpu += 5 * time.Second
			d.SetUsage(row.ContainerID, fake.Usage{CPU: cpu})
			nextRound(pol.FineStep)
		}
		sampled := samplesOf(t, h1, id, stats.Fine)
		hosttest.Close(t, h1) // at 35 s; the container runs on

		time.Sleep(5 * time.Second) // the new Host opens at 40 s, on a step
		h2 := d.Open(t, dir)
		if got := samplesOf(t, h2, id, stats.Fine); !sameSamples(got, sampled) {
			t.Fatalf("after the restart the store has %+v, want %+v", got, sampled)
		}
		// A tenth of a core, read at 50 s, 60 s and 70 s (the first reading,
		// at 40 s, is the new Host's baseline).
		midStep(t0, pol.FineStep)
		for range 3 {
			cpu += time.Second
			d.SetUsage(row.ContainerID, fake.Usage{CPU: cpu})
			nextRound(pol.FineStep)
		}
		fine := samplesOf(t, h2, id, stats.Fine)
		var first []stats.Sample // the first minute's
		var byOld, byNew int
		for _, s := range fine {
			if s.At.Before(t0.Add(time.Minute)) {
				first = append(first, s)
				if s.At.Before(t0.Add(35 * time.Second)) {
					byOld++
				} else {
					byNew++
				}
			}
		}
		if byOld == 0 || byNew == 0 {
			t.Fatalf("the first minute's samples %+v: want some by each Host", first)
		}
		var sum float64
		for _, s := range first {
			sum += s.CPUPercent
		}
		coarse := samplesOf(t, h2, id, stats.Coarse)
		if len(coarse) == 0 || !coarse[0].At.Equal(t0) || !near(coarse[0].CPUPercent, sum/float64(len(first))) {
			t.Errorf("coarse samples %+v; want the first minute's mean cpu %v of %+v", coarse, sum/float64(len(first)), first)
		}
	})
}

// TestStatsOfDeletedProgram: a deleted program's history goes with it:
// the store keeps none, the API's read is a not-found, the metrics'
// latest reading is gone, and no sample of it is published any more.
func TestStatsOfDeletedProgram(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFakeEngine(t, nil, fake.Hooks{})
		t0 := time.Now()
		h := d.Open(t, t.TempDir())
		pol := h.StatsPolicy()
		ctx := context.Background()
		id := createProgram(t, h, dockerfileProgram("alice", "1"))
		keep := createProgram(t, h, dockerfileProgram("alice", "2"))
		startProgram(t, h, id)
		startProgram(t, h, keep)
		settle(t, h, id, lifecycle.Ready)
		settle(t, h, keep, lifecycle.Ready)
		midStep(t0, pol.FineStep)
		for range 8 {
			nextRound(pol.FineStep)
		}
		if len(samplesOf(t, h, id, stats.Fine)) == 0 || len(samplesOf(t, h, id, stats.Coarse)) == 0 {
			t.Fatal("no history to delete")
		}
		sub, cancel := collect(h)
		defer cancel()
		if err := h.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		for _, r := range []stats.Resolution{stats.Fine, stats.Coarse} {
			if got := samplesOf(t, h, id, r); len(got) != 0 {
				t.Errorf("%d %s samples of a deleted program", len(got), r)
			}
		}
		if _, _, err := h.StatsHistory(ctx, id, "", time.Time{}); !errors.Is(err, host.ErrNotFound) {
			t.Errorf("history of a deleted program: %v, want ErrNotFound", err)
		}
		for range 3 {
			nextRound(pol.FineStep)
		}
		for _, u := range h.LatestUsage() {
			if u.ProgramID == id {
				t.Errorf("a deleted program's latest reading: %+v", u)
			}
		}
		if got := sub.of(id); len(got) != 0 {
			t.Errorf("samples of a deleted program published: %+v", got)
		}
		if got := sub.of(keep); len(got) < 3 {
			t.Errorf("the other program's samples: %d, want one a round", len(got))
		}
	})
}

// TestStatsReadsBounded: a round reads at most Options.StatsReads
// containers at once, however many programs run: a slow engine is not
// asked for a thousand stats at once.
func TestStatsReadsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			armed atomic.Bool
			gate  = make(chan struct{})
			calls concurrency
		)
		hooks := fake.Hooks{Before: func(ctx context.Context, c fake.Call) error {
			if c.Method != "Stats" || !armed.Load() {
				return nil
			}
			defer calls.enter()()
			select {
			case <-gate:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		d := newFakeEngine(t, nil, hooks)
		t0 := time.Now()
		const reads, programs = 2, 6
		h := d.Open(t, t.TempDir(), func(o *host.Options) { o.StatsReads = reads })
		pol := h.StatsPolicy()
		var ids []string
		for i := range programs {
			id := createProgram(t, h, dockerfileProgram("alice", string(rune('a'+i))))
			startProgram(t, h, id)
			ids = append(ids, id)
		}
		for _, id := range ids {
			settle(t, h, id, lifecycle.Ready)
		}
		midStep(t0, pol.FineStep)
		armed.Store(true)
		nextRound(pol.FineStep) // the round's reads are held in the hook
		if held, _ := calls.read(); held != reads {
			t.Errorf("%d reads at once, want %d", held, reads)
		}
		close(gate)
		synctest.Wait()
		if _, most := calls.read(); most != reads {
			t.Errorf("at most %d reads at once, want %d", most, reads)
		}
		if got := len(h.LatestUsage()); got != programs {
			t.Errorf("the round read %d programs, want %d", got, programs)
		}
	})
}
