package host_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/stats"
	"github.com/hershyorg/hershy/internal/store"
)

// BenchmarkSampling1000 measures what the resource history costs the Host
// itself with 1,000 running programs: the CPU time (user and system, the
// whole process: the sampler, the store's SQLite, the garbage collector)
// per sampling round, read with getrusage around b.N rounds of the Host's
// own sampling loop. The engine is the fake, whose Stats costs next to
// nothing: the Docker driver's reads are BenchmarkStatsReads
// (internal/driver/docker), /state's statfs is statefs's BenchmarkUsage.
//
// The store holds what it holds at steady state (an hour of fine and a day
// of coarse samples per program: 1.8 million rows), so each round's
// inserts and, every sixth round, the prune, work on a full table. The
// policy is the default one a hundred times faster (steps of 100 ms and
// 600 ms, the same number of rows per program), so a round comes every
// 100 ms instead of every 10 s; a round's work is the same. It reports the
// CPU per round and what that is of one core at the default 10 s step.
//
//	go test ./internal/host -run '^$' -bench Sampling1000 -benchtime 50x
func BenchmarkSampling1000(b *testing.B) {
	const users, each = 100, 10
	pol := stats.Policy{
		FineStep: stats.DefaultPolicy.FineStep / 100, FineKeep: stats.DefaultPolicy.FineKeep / 100,
		CoarseStep: stats.DefaultPolicy.CoarseStep / 100, CoarseKeep: stats.DefaultPolicy.CoarseKeep / 100,
	}
	d := hosttest.NewFake(b, fake.Options{Program: fake.Script{API: watcherAPI(nil)}.Program()})
	dir := b.TempDir()
	opts := func(o *host.Options) {
		o.Stats = pol
		o.Quotas.MaxPrograms = each
	}
	ctx := context.Background()

	// 1,000 running programs (ten per user: the quotas stay the default).
	h1 := d.Open(b, dir, opts)
	var ids []string
	for u := range users {
		for range each {
			p, err := h1.Create(ctx, dockerfileProgram(fmt.Sprintf("user%03d", u), "1"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h1.Start(ctx, p.ID); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
	}
	for _, id := range ids {
		hosttest.WaitState(b, h1, id, lifecycle.Ready, 5*time.Minute)
	}
	hosttest.Close(b, h1) // the containers run on

	// A full history, as after a day.
	st, err := store.Open(filepath.Join(dir, "hershy.db"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var batch []store.ProgramSample
	flush := func() {
		if err := st.SaveStats(ctx, store.StatsBatch{Samples: batch}); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for _, id := range ids {
		for r, step := range map[stats.Resolution]time.Duration{stats.Fine: pol.FineStep, stats.Coarse: pol.CoarseStep} {
			for at := now.Add(-pol.Keep(r)).Truncate(step).Add(step); at.Before(now.Truncate(step)); at = at.Add(step) {
				batch = append(batch, store.ProgramSample{ProgramID: id, Resolution: r, Sample: stats.Sample{
					At: at, CPUPercent: 1.5, MemoryBytes: 12 << 20, MemoryLimitBytes: 256 << 20, Pids: 9,
					StateBytesUsed: 1 << 20, StateBytesLimit: 256 << 20,
				}})
			}
		}
		if len(batch) > 20000 {
			flush()
		}
	}
	flush()
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}

	h := d.Open(b, dir, opts)
	var samples, target atomic.Int64
	reached := make(chan struct{}, 1)
	target.Store(int64(len(ids))) // the first round after the baseline
	cancel := h.SubscribeStats(func(host.ProgramSample) {
		if samples.Add(1) == target.Load() {
			reached <- struct{}{}
		}
	})
	defer cancel()
	wait := func() {
		select {
		case <-reached:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d samples, waiting for %d", samples.Load(), target.Load())
		}
	}
	wait()
	target.Store(samples.Load() + int64(b.N*len(ids)))
	b.ResetTimer()
	cpu0, t0 := cpuTime(b), time.Now()
	wait()
	cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
	b.StopTimer()
	perRound := cpu / time.Duration(b.N)
	b.ReportMetric(float64(perRound)/1e6, "cpu-ms/round")
	b.ReportMetric(100*float64(perRound)/float64(stats.DefaultPolicy.FineStep), "%core@10s")
	b.Logf("%d programs, %d rounds in %v: %v of CPU per round, %.3f%% of one core at a round every %v",
		len(ids), b.N, wall.Round(time.Millisecond), perRound.Round(time.Microsecond),
		100*float64(perRound)/float64(stats.DefaultPolicy.FineStep), stats.DefaultPolicy.FineStep)
}

// cpuTime is the process's CPU time so far (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
