package docker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
)

// BenchmarkStatsReads measures what reading a container's usage costs, on
// real containers of the engine: HERSHY_BENCH_CONTAINERS (default 50) idle
// probes under HERSHY_BENCH_RUNTIME (default runc), each b.N iteration one
// round of Stats over all of them, one at a time.
//
//   - files: the driver's path, the cgroup files. The reads' kernel work is
//     done in this process's system calls, so getrusage around the rounds
//     is all it costs.
//   - engine: the engine's one-shot stats API for the same containers
//     (the fallback), for comparison. Its work is mostly done by dockerd,
//     containerd and the containers' shims, so their CPU time (from
//     /proc/<pid>/stat, in clock ticks) is added to this process's. Other
//     containers on a shared engine add noise to it.
//
// It reports the CPU per container read and what reading 1,000
// containers every 10 s (the Host's default step) is of one core.
//
//	HERSHY_BENCH_CONTAINERS=100 go test ./internal/driver/docker -run '^$' -bench StatsReads -benchtime 20x
func BenchmarkStatsReads(b *testing.B) {
	n := 50
	if v := os.Getenv("HERSHY_BENCH_CONTAINERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("HERSHY_BENCH_CONTAINERS=%q", v)
		}
	}
	rt := driver.RuntimeRunc
	if v := os.Getenv("HERSHY_BENCH_RUNTIME"); v != "" {
		rt = v
	}
	d, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	ctx := context.Background()
	if err := d.Check(ctx, rt); err != nil {
		if inCI() {
			b.Fatal(err)
		}
		b.Skip(err)
	}
	image := probeImage(b, d)
	pids := int64(64)
	if rt == driver.RuntimeRunsc {
		pids = MinPidsRunsc
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id, err := d.CreateContainer(ctx, driver.ContainerSpec{
				Name: fmt.Sprintf("hershy-bench-%s-stats-%d", testRun, i), Image: image, Runtime: rt, User: "10001:10001",
				Labels: map[string]string{driver.LabelProgram: "bench-stats", driver.LabelInstance: testRun},
				Limits: driver.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: pids, LogBytes: 1 << 20},
			})
			if err == nil {
				ids[i] = id
				err = d.StartContainer(ctx, id)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, id := range ids {
			if id != "" {
				d.RemoveContainer(ctx, id)
			}
		}
	})
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	viaEngine, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { viaEngine.Close() })
	viaEngine.statsViaEngine = true

	for _, c := range []struct {
		name string
		d    *Driver
		// others: count the engine's processes' CPU time too
		others bool
	}{{"files", d, false}, {"engine", viaEngine, true}} {
		b.Run(c.name, func(b *testing.B) {
			round := func() {
				for _, id := range ids {
					if _, err := c.d.Stats(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
			}
			round() // the targets are looked up and cached once per container
			b.ResetTimer()
			self0, eng0 := selfCPU(b), engineCPU()
			for b.Loop() {
				round()
			}
			cpu := selfCPU(b) - self0
			if c.others {
				cpu += engineCPU() - eng0
			}
			b.StopTimer()
			per := cpu / time.Duration(b.N*len(ids))
			b.ReportMetric(float64(per)/1e3, "cpu-µs/container")
			b.ReportMetric(100*float64(1000*per)/float64(10*time.Second), "%core@1000/10s")
			b.Logf("%s, %d %s containers: %v of CPU per read; 1,000 every 10 s: %.3f%% of one core",
				c.name, len(ids), rt, per.Round(100*time.Nanosecond), 100*float64(1000*per)/float64(10*time.Second))
		})
	}
}

// selfCPU is this process's CPU time so far.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// engineCPU is the CPU time so far of the engine's processes: dockerd,
// containerd and every containerd shim, with their reaped children's.
func engineCPU() time.Duration {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	var total time.Duration
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		comm, err := os.ReadFile(p + "/comm")
		if err != nil {
			continue
		}
		name := string(bytes.TrimSpace(comm))
		if name != "dockerd" && name != "containerd" && !strings.HasPrefix(name, "containerd-shim") {
			continue
		}
		stat, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 15 {
			continue
		}
		// Fields 14 to 17 (counted from field 3): its own user and system
		// time, and that of its children it has waited for (the runsc
		// processes a shim runs to read a gVisor sandbox's figures).
		for _, x := range f[11:15] {
			n, _ := strconv.ParseInt(string(x), 10, 64)
			total += time.Duration(n) * tick
		}
	}
	return total
}
