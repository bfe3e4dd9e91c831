package host

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/stats"
	"github.com/hershyorg/hershy/internal/store"
)

// The resource history. One goroutine (sampleLoop) reads every running
// program's container through the driver each fine step, a few reads at a
// time (Options.StatsReads), and turns each reading into a sample with the
// program's meter (package stats: CPU percent from the previous reading,
// /state usage, restarts). Fine samples are folded into coarse ones per
// coarse step. One transaction per round writes the round's samples to the
// store, and once per coarse step also drops what is older than each
// series keeps: the history survives a Host restart, and a program's goes
// with its record. The API reads it from the store (StatsHistory); each
// new fine sample also goes to SubscribeStats's subscribers (the event
// stream), and the latest raw readings to the metrics (LatestUsage).

// DefaultStatsReads is the default of Options.StatsReads: enough to keep
// the file reads of a thousand programs well inside a step, few enough
// that a fallback to the engine's stats API does not crowd out launches.
const DefaultStatsReads = 4

// ProgramSample is a new fine sample of a program's resources, as
// SubscribeStats delivers it.
type ProgramSample struct {
	ProgramID string
	UserID    string // the owner
	Sample    stats.Sample
}

// ProgramUsage is the latest raw reading of a running program's container
// (cumulative CPU time and network bytes, current memory and pids).
type ProgramUsage struct {
	ProgramID   string
	UserID      string
	ContainerID string
	Usage       driver.Stats
}

// sampler is the resource history's state in memory.
type sampler struct {
	mu        sync.Mutex
	meters    map[string]*programMeter // program id -> its meter and open coarse step
	latest    map[string]ProgramUsage  // the last round's readings
	lastPrune time.Time
	failing   bool // the last round had read errors (logged once, not every round)

	subsMu sync.Mutex
	subs   map[int]func(ProgramSample) // replaced, never changed in place
	subSeq int
}

// programMeter is one program's part of the sampler.
type programMeter struct {
	meter  stats.Meter
	bucket stats.Bucket
}

// StatsPolicy is the resource history's steps and retention.
func (h *Host) StatsPolicy() stats.Policy { return h.opts.Stats }

// StatsHistory returns program id's samples of resolution r from since on,
// oldest first, and the resolution read: stats.Policy.Window decides the
// resolution when r is "" and keeps since within what the series keeps.
func (h *Host) StatsHistory(ctx context.Context, id string, r stats.Resolution, since time.Time) (stats.Resolution, []stats.Sample, error) {
	if _, err := h.current(ctx, id); err != nil {
		return "", nil, err
	}
	r, since = h.opts.Stats.Window(time.Now(), since, r)
	samples, err := h.store.ListStats(ctx, id, r, since)
	return r, samples, err
}

// LatestUsage returns the latest raw reading of every program that was
// running at the last sampling round, sorted by program id.
func (h *Host) LatestUsage() []ProgramUsage {
	h.samples.mu.Lock()
	out := slices.Collect(maps.Values(h.samples.latest))
	h.samples.mu.Unlock()
	slices.SortFunc(out, func(a, b ProgramUsage) int { return strings.Compare(a.ProgramID, b.ProgramID) })
	return out
}

// SubscribeStats calls fn with every new fine sample of every program,
// once the sample is stored, from the sampling goroutine; fn must not
// block. It returns the function that ends the subscription.
func (h *Host) SubscribeStats(fn func(ProgramSample)) (cancel func()) {
	s := &h.samples
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	s.subSeq++
	key := s.subSeq
	s.subs = maps.Clone(s.subs)
	if s.subs == nil {
		s.subs = map[int]func(ProgramSample){}
	}
	s.subs[key] = fn
	return func() {
		s.subsMu.Lock()
		defer s.subsMu.Unlock()
		s.subs = maps.Clone(s.subs)
		delete(s.subs, key)
	}
}

// forgetStats drops what the sampler holds of a deleted program (its
// stored history goes with its record).
func (h *Host) forgetStats(id string) {
	h.samples.mu.Lock()
	defer h.samples.mu.Unlock()
	delete(h.samples.meters, id)
	delete(h.samples.latest, id)
}

// restoreStats folds the fine samples a previous Host stored after its
// last coarse step into coarse steps again: the steps that ended while no
// Host ran are written, and the open one goes on in memory.
func (h *Host) restoreStats(ctx context.Context) error {
	step := h.opts.Stats.CoarseStep
	unfolded, err := h.store.UnfoldedStats(ctx, step)
	if err != nil {
		return err
	}
	now := time.Now()
	var batch []store.ProgramSample
	meters := map[string]*programMeter{}
	for id, samples := range unfolded {
		pm := &programMeter{}
		for _, s := range samples {
			if c, ok := pm.bucket.Add(s, step); ok {
				batch = append(batch, store.ProgramSample{ProgramID: id, Resolution: stats.Coarse, Sample: c})
			}
		}
		if c, ok := pm.bucket.Flush(now, step); ok {
			batch = append(batch, store.ProgramSample{ProgramID: id, Resolution: stats.Coarse, Sample: c})
		}
		if pm.bucket.Open() {
			meters[id] = pm
		}
	}
	h.samples.mu.Lock()
	h.samples.meters, h.samples.latest = meters, map[string]ProgramUsage{}
	h.samples.mu.Unlock()
	return h.store.SaveStats(ctx, store.StatsBatch{Samples: batch})
}

// sampleLoop samples at once (the baselines), then every fine step, until
// the Host closes.
func (h *Host) sampleLoop() {
	defer h.wg.Done()
	tick := time.NewTicker(h.opts.Stats.FineStep)
	defer tick.Stop()
	for {
		h.sampleRound(h.ctx)
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sampled reports whether a program is sampled: its container runs
// (Ready, or Starting once launched: a program that spins or leaks before
// its WatcherAPI answers shows it too).
func sampled(row store.Program) bool {
	return row.ContainerID != "" && (row.State == lifecycle.Ready || row.State == lifecycle.Starting)
}

// reading is one program's usage read in a round.
type reading struct {
	row   store.Program
	usage driver.Stats
	state StateUsage
	err   error
}

// sampleRound reads every running program, folds, stores and publishes.
func (h *Host) sampleRound(ctx context.Context) {
	h.mu.Lock()
	var targets []store.Program
	for _, row := range h.rows {
		if sampled(row) {
			targets = append(targets, row)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(targets, func(a, b store.Program) int { return strings.Compare(a.ID, b.ID) })
	readings := h.readUsage(ctx, targets)
	if ctx.Err() != nil {
		return
	}

	// Programs deleted while they were read are dropped here (and their
	// samples by the store, which finds no record).
	h.mu.Lock()
	exists := make(map[string]bool, len(h.rows))
	for id := range h.rows {
		exists[id] = true
	}
	h.mu.Unlock()

	pol := h.opts.Stats
	now := time.Now()
	var (
		batch   []store.ProgramSample
		fresh   []ProgramSample
		failed  int
		lastErr error
	)
	s := &h.samples
	s.mu.Lock()
	read := make(map[string]bool, len(readings))
	latest := make(map[string]ProgramUsage, len(readings))
	for _, r := range readings {
		if r.err != nil {
			if !errors.Is(r.err, driver.ErrNotRunning) && !errors.Is(r.err, driver.ErrNotFound) {
				failed, lastErr = failed+1, r.err
			}
			continue
		}
		id := r.row.ID
		if !exists[id] {
			continue
		}
		read[id] = true
		latest[id] = ProgramUsage{ProgramID: id, UserID: r.row.UserID, ContainerID: r.row.ContainerID, Usage: r.usage}
		pm := s.meters[id]
		if pm == nil {
			pm = &programMeter{}
			s.meters[id] = pm
		}
		sample, ok := pm.meter.Next(stats.Reading{
			Container: r.row.ContainerID, Usage: r.usage,
			StateBytesUsed: r.state.Used, StateBytesLimit: r.state.Limit, Restarts: r.row.RestartCount,
		})
		if !ok {
			continue
		}
		batch = append(batch, store.ProgramSample{ProgramID: id, Resolution: stats.Fine, Sample: sample})
		fresh = append(fresh, ProgramSample{ProgramID: id, UserID: r.row.UserID, Sample: sample})
		if c, ok := pm.bucket.Add(sample, pol.CoarseStep); ok {
			batch = append(batch, store.ProgramSample{ProgramID: id, Resolution: stats.Coarse, Sample: c})
		}
	}
	for id, pm := range s.meters {
		if !exists[id] {
			delete(s.meters, id)
			continue
		}
		if !read[id] {
			pm.meter.Forget() // not running: its next run starts a new baseline
		}
		if c, ok := pm.bucket.Flush(now, pol.CoarseStep); ok {
			batch = append(batch, store.ProgramSample{ProgramID: id, Resolution: stats.Coarse, Sample: c})
		}
		if !read[id] && !pm.bucket.Open() {
			delete(s.meters, id)
		}
	}
	s.latest = latest
	b := store.StatsBatch{Samples: batch}
	if now.Sub(s.lastPrune) >= pol.CoarseStep {
		s.lastPrune = now
		b.PruneBefore = map[stats.Resolution]time.Time{stats.Fine: pol.Cutoff(stats.Fine, now), stats.Coarse: pol.Cutoff(stats.Coarse, now)}
	}
	switch {
	case failed > 0 && !s.failing:
		h.log.Warn("reading programs' resource usage failed", "programs", failed, "err", lastErr)
	case failed == 0 && s.failing:
		h.log.Info("reading programs' resource usage works again")
	}
	s.failing = failed > 0
	s.mu.Unlock()

	if err := h.store.SaveStats(ctx, b); err != nil {
		if ctx.Err() == nil {
			h.log.Error("storing programs' resource samples", "err", err)
		}
		return
	}
	s.subsMu.Lock()
	subs := s.subs
	s.subsMu.Unlock()
	for _, p := range fresh {
		for _, fn := range subs {
			fn(p)
		}
	}
}

// readUsage reads the targets' containers, Options.StatsReads at a time,
// each read bounded by a fine step (an engine that does not answer delays
// one round, not every later one).
func (h *Host) readUsage(ctx context.Context, targets []store.Program) []reading {
	out := make([]reading, len(targets))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(h.opts.StatsReads, len(targets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(out) || ctx.Err() != nil {
					return
				}
				row := targets[i]
				rctx, cancel := context.WithTimeout(ctx, h.opts.Stats.FineStep)
				st, err := h.driver.Stats(rctx, row.ContainerID)
				cancel()
				r := reading{row: row, usage: st, err: err}
				if err == nil {
					// Shared with the lists' figures (at most usageFresh old).
					r.state, _ = h.StateUsageRecent(row)
				}
				out[i] = r
			}
		}()
	}
	wg.Wait()
	return out
}
