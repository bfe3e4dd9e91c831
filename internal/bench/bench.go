// Package bench measures what the Host costs against doing the same by
// hand on the same engine: each figure is taken side by side with its
// baseline in one run (interleaved where the figure repeats), and the
// report gives both and their ratio. It drives a real `hershy serve`
// process (started here, on a loopback port and a fresh data directory) and
// the engine directly for the baselines, so it needs the engine and both
// runtimes it is asked for.
//
// These are measurements, not tests: nothing here fails on a timing. A
// figure that misses its target says so in the report.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/hershyorg/hershy/internal/driver/docker"
)

// Options choose what a run measures and how much.
type Options struct {
	Hershy   string   // the hershy binary to run as `hershy serve` (default: this executable)
	Runtimes []string // runtimes to measure under ("runsc", "runc")
	Rounds   int      // repetitions of the repeated figures (start, deploy, proxy)
	Programs int      // programs of the scale figures (started at once, listed, re-adopted)
	// ProgramMemory is each scale program's memory limit (and the raw
	// runs'): small, so that many fit the machine and one user's quota.
	ProgramMemory int64
	// SharedCache is the Host's read-only build cache layer (serve
	// --go-shared-cache); a persistent folder spares each run a cold
	// compile of the standard library. "" uses the data directory's.
	SharedCache string
	// WorkDir holds the Hosts' data directories (default: a temporary
	// folder, removed at the end).
	WorkDir string
	Log     io.Writer // progress lines (default: discarded)
}

// Smoke is a run small enough for CI: every figure once, over a few
// programs, so the command cannot rot.
func Smoke(o Options) Options {
	o.Rounds, o.Programs = 1, 3
	return o
}

func (o *Options) defaults() error {
	if o.Hershy == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Hershy = exe
	}
	if len(o.Runtimes) == 0 {
		o.Runtimes = []string{"runsc", "runc"}
	}
	for _, rt := range o.Runtimes {
		if rt != "runsc" && rt != "runc" {
			return fmt.Errorf("bench: unknown runtime %q (want runsc or runc)", rt)
		}
	}
	if o.Rounds <= 0 {
		o.Rounds = 10
	}
	if o.Programs <= 0 {
		o.Programs = 100
	}
	if o.ProgramMemory <= 0 {
		o.ProgramMemory = 64 << 20
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Run measures every figure under each runtime and returns the report.
// A figure that cannot be measured ends the run with its error: a report
// with holes would read as a pass.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "hershy-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	engine, err := docker.New()
	if err != nil {
		return nil, fmt.Errorf("bench: the engine: %w", err)
	}
	defer engine.Close()
	// A run that was killed leaves its by-hand containers, whose names the
	// next run's would collide with.
	if left, err := engine.ListContainers(ctx, map[string]string{labelRaw: "true"}); err == nil {
		for _, c := range left {
			engine.RemoveContainer(ctx, c.ID)
		}
	}
	rep := &Report{Started: time.Now(), Options: o, Machine: describeMachine(ctx, engine)}
	for _, rt := range o.Runtimes {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := engine.Check(cctx, rt)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bench: the engine cannot run %s: %w", rt, err)
		}
		r := &runner{o: o, rt: rt, engine: engine, rep: rep}
		if err := r.run(ctx); err != nil {
			return rep, fmt.Errorf("bench (%s): %w", rt, err)
		}
	}
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

// runner measures the figures under one runtime.
type runner struct {
	o      Options
	rt     string
	engine *docker.Driver
	rep    *Report
}

func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.o.Log, "bench %s: "+format+"\n", append([]any{r.rt}, a...)...)
}

func (r *runner) run(ctx context.Context) (err error) {
	h, err := startHost(ctx, r.o, r.rt, "main")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.close()) }()
	for _, step := range []struct {
		name string
		fn   func(context.Context, *hostProc) error
	}{
		{"start", r.startFigure},
		{"deploy", r.deployCLIFigure},
		{"warm deploy", r.warmDeployFigure},
		{"proxy", r.proxyFigures},
		{"scale", r.scaleFigures},
	} {
		r.logf("%s", step.name)
		if err := step.fn(ctx, h); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return nil
}

// median returns the middle of ds (the mean of the two middle ones).
func median[T ~int64 | ~float64](ds []T) T {
	return quantile(ds, 0.5)
}

// quantile returns the q-quantile of ds (linear between ranks).
func quantile[T ~int64 | ~float64](ds []T, q float64) T {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	frac := pos - float64(i)
	return s[i] + T(frac*float64(s[i+1]-s[i]))
}

// ms formats a duration in milliseconds, with sensible precision.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 1:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f µs", v*1000)
}

// mib formats a byte count in MiB.
func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
