// Package stats is the pure part of the Host's resource history: what a
// sample of a program holds, how two successive readings of a container
// become one (CPU percent from the difference of cumulative CPU time, a
// restarted container's counters starting again), how fine samples are
// folded into coarse ones, and how long each resolution is kept. It does
// no I/O and reads no clock: the Host (internal/host/stats.go) reads the
// engine, keeps the history in its store and serves it.
package stats

import (
	"errors"
	"fmt"
	"time"
)

// Sample is one point of a program's resource history. The JSON names are
// the API's (GET /programs/{id}/stats, the "stats" event).
type Sample struct {
	At time.Time `json:"at"`
	// CPUPercent is the CPU the program used over the step before At, in
	// percent of one core (150: one and a half cores).
	CPUPercent       float64 `json:"cpu_percent"`
	MemoryBytes      int64   `json:"memory_bytes"` // the working set
	MemoryLimitBytes int64   `json:"memory_limit_bytes"`
	Pids             int64   `json:"pids"`
	// NetRxBytes and NetTxBytes are cumulative since the container started
	// (0 without a network).
	NetRxBytes      int64 `json:"net_rx_bytes"`
	NetTxBytes      int64 `json:"net_tx_bytes"`
	StateBytesUsed  int64 `json:"state_bytes_used"`
	StateBytesLimit int64 `json:"state_bytes_limit"`
	// Restarts is the program's restart count (automatic restarts since
	// its last manual start or healthy period).
	Restarts int `json:"restarts"`
}

// Resolution names one of the two series a program's history keeps.
type Resolution string

const (
	Fine   Resolution = "fine"   // every Policy.FineStep, kept Policy.FineKeep
	Coarse Resolution = "coarse" // every Policy.CoarseStep, kept Policy.CoarseKeep
)

// ParseResolution validates a resolution's name.
func ParseResolution(s string) (Resolution, error) {
	switch r := Resolution(s); r {
	case Fine, Coarse:
		return r, nil
	}
	return "", fmt.Errorf("unknown resolution %q (want fine or coarse)", s)
}

// Policy is how often a program is sampled and how long each series is
// kept.
type Policy struct {
	FineStep   time.Duration // between two samples
	FineKeep   time.Duration // how far back fine samples go
	CoarseStep time.Duration // a coarse sample sums up the fine ones of one step
	CoarseKeep time.Duration
}

// DefaultPolicy samples every 10 s and keeps that an hour, and keeps a
// sample a minute for a day: about 1,800 rows per program.
var DefaultPolicy = Policy{FineStep: 10 * time.Second, FineKeep: time.Hour, CoarseStep: time.Minute, CoarseKeep: 24 * time.Hour}

// Check reports a policy that cannot work: a step that is not positive, a
// series kept for less than one step, a coarse step that is not a whole
// number of fine steps, or coarse samples kept for less time than fine
// ones.
func (p Policy) Check() error {
	switch {
	case p.FineStep <= 0 || p.CoarseStep <= 0:
		return errors.New("stats: the sampling steps must be positive")
	case p.FineKeep < p.FineStep || p.CoarseKeep < p.CoarseStep:
		return errors.New("stats: each series must be kept for at least one step")
	case p.CoarseStep%p.FineStep != 0:
		return fmt.Errorf("stats: the coarse step %v is not a whole number of fine steps (%v)", p.CoarseStep, p.FineStep)
	case p.CoarseKeep < p.FineKeep:
		return errors.New("stats: coarse samples must be kept at least as long as fine ones")
	}
	return nil
}

// Step is the interval between two samples of resolution r.
func (p Policy) Step(r Resolution) time.Duration {
	if r == Coarse {
		return p.CoarseStep
	}
	return p.FineStep
}

// Keep is how long samples of resolution r are kept.
func (p Policy) Keep(r Resolution) time.Duration {
	if r == Coarse {
		return p.CoarseKeep
	}
	return p.FineKeep
}

// Cutoff is the time before which samples of resolution r are dropped.
func (p Policy) Cutoff(r Resolution, now time.Time) time.Time { return now.Add(-p.Keep(r)) }

// Window decides what a query for the samples since `since` reads: the
// resolution asked for, or, when none is, the fine series if it reaches
// back that far (within a fine step: "the last hour" asked a moment ago
// still is) and the coarse one otherwise; and the time from which to
// read, never before what that series keeps (a zero since: all it keeps).
func (p Policy) Window(now, since time.Time, r Resolution) (Resolution, time.Time) {
	if r == "" {
		r = Fine
		if since.Before(p.Cutoff(Fine, now).Add(-p.FineStep)) && !since.IsZero() {
			r = Coarse
		}
	}
	if cut := p.Cutoff(r, now); since.Before(cut) {
		since = cut
	}
	return r, since
}
