package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hershyorg/hershy/internal/client"
)

// benchUser owns the programs of a run (scale programs: scaleUser).
const benchUser = "bench"

// deployProgram creates a program of source version v for user and starts
// it (a build the first time), and waits until it is Ready.
func deployProgram(ctx context.Context, h *hostProc, t *tracker, user string, v int, memory int64) (*client.Program, error) {
	c, err := h.admin.CreateProgram(ctx, client.SourceRequest{UserID: user, SrcFiles: programSource(v), MemoryBytes: memory})
	if err != nil {
		return nil, err
	}
	res, err := h.admin.Start(ctx, c.ProgramID)
	if err != nil {
		return nil, err
	}
	if _, err := awaitState(ctx, t, map[string]uint64{c.ProgramID: res.Seq}, "Ready", 20*time.Minute); err != nil {
		return nil, err
	}
	return t.state(c.ProgramID), nil
}

// awaitState waits until every program is in state (or Error: an error
// naming it) and returns when each was seen to.
func awaitState(ctx context.Context, t *tracker, want map[string]uint64, state string, limit time.Duration) (map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	got, err := t.await(ctx, want, inState(state))
	if err != nil {
		return nil, err
	}
	for id := range want {
		if p := t.state(id); p != nil && p.State == "Error" && state != "Error" {
			return nil, fmt.Errorf("program %s: Error: %s", id, p.ErrorMsg)
		}
	}
	return got, nil
}

// startFigure: a built program's start → Ready through the Host, against
// the same image run by hand → its first WatcherAPI answer. Rounds
// alternate which goes first.
func (r *runner) startFigure(ctx context.Context, h *hostProc) error {
	t := newTracker(ctx, h.admin)
	defer t.close()
	p, err := deployProgram(ctx, h, t, benchUser, 1, 0)
	if err != nil {
		return err
	}
	stop := func() error {
		res, err := h.admin.Stop(ctx, p.ProgramID)
		if err != nil {
			return err
		}
		_, err = awaitState(ctx, t, map[string]uint64{p.ProgramID: res.Seq}, "Stopped", 5*time.Minute)
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	stateDir, err := r.rawStateDir("start")
	if err != nil {
		return err
	}
	spec := r.rawSpec("start", "hersh-program-"+p.BuildID, stateDir, 0)
	var viaHost, byHand []time.Duration
	hostOnce := func() error {
		t0 := time.Now()
		res, err := h.admin.Start(ctx, p.ProgramID)
		if err != nil {
			return err
		}
		got, err := awaitState(ctx, t, map[string]uint64{p.ProgramID: res.Seq}, "Ready", 5*time.Minute)
		if err != nil {
			return err
		}
		viaHost = append(viaHost, got[p.ProgramID].Sub(t0))
		return stop()
	}
	rawOnce := func() error {
		cid, d, err := r.rawRun(ctx, spec, time.Millisecond, nil)
		if cid != "" {
			err = errors.Join(err, r.removeRaw(cid))
		}
		if err == nil {
			byHand = append(byHand, d)
		}
		return err
	}
	for i := range r.o.Rounds {
		first, second := hostOnce, rawOnce
		if i%2 == 1 {
			first, second = rawOnce, hostOnce
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
	}
	r.rep.add(Figure{
		Name: "start of a built program → Ready, vs by hand → first WatcherAPI answer", Runtime: r.rt,
		Value: ms(median(viaHost)), Baseline: ms(median(byHand)),
		Ratio: ratio(median(viaHost), median(byHand)), Target: "≤ 1.05×", Met: ratio(median(viaHost), median(byHand)) <= 1.05,
		Note: fmt.Sprintf("medians of %d rounds each, alternating", r.o.Rounds),
	})
	return nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
