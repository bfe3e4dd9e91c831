package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/supervisor"
)

// Errors the API maps to status codes.
var (
	ErrNotFound = store.ErrNotFound     // 404
	ErrConflict = lifecycle.ErrConflict // 409
	ErrInvalid  = errors.New("invalid") // 400
)

// toLifecycle extracts the lifecycle's view of a stored program.
func toLifecycle(r store.Program) lifecycle.Program {
	p := lifecycle.Program{
		State: lifecycle.State(r.State), Desired: lifecycle.Desired(r.Desired),
		BuildID: r.BuildID, ImageID: r.ImageID, ContainerID: r.ContainerID, ErrorMsg: r.ErrorMsg,
		Policy: lifecycle.RestartPolicy(r.RestartPolicy), RestartCount: r.RestartCount,
		LastExitCode: r.LastExitCode, LastOOM: r.LastOOM,
		Seq: uint64(r.EffectSeq), StartAfterStop: r.StartAfterStop,
	}
	if r.NextRestartAt != nil {
		p.NextRestartAt = *r.NextRestartAt
	}
	if r.HealthySince != nil {
		p.HealthySince = *r.HealthySince
	}
	if r.LastFinishedAt != nil {
		p.LastExitAt = *r.LastFinishedAt
	}
	return p
}

// fromLifecycle writes the lifecycle's fields into a stored row.
func fromLifecycle(r store.Program, p lifecycle.Program, rt string) store.Program {
	r.State, r.Desired = string(p.State), string(p.Desired)
	r.BuildID, r.ImageID, r.ContainerID, r.ErrorMsg = p.BuildID, p.ImageID, p.ContainerID, p.ErrorMsg
	r.RestartPolicy, r.RestartCount = string(p.Policy), p.RestartCount
	r.LastExitCode, r.LastOOM = p.LastExitCode, p.LastOOM
	r.EffectSeq, r.StartAfterStop = int64(p.Seq), p.StartAfterStop
	r.NextRestartAt, r.HealthySince, r.LastFinishedAt = timePtr(p.NextRestartAt), timePtr(p.HealthySince), timePtr(p.LastExitAt)
	if p.ContainerID != "" {
		r.Runtime = rt
	}
	return r
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// supervise starts the supervisor of a stored program.
func (h *Host) supervise(r store.Program) *supervisor.Supervisor {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sups[r.ID]; ok {
		return s
	}
	h.rows[r.ID] = r
	id := r.ID
	s := supervisor.New(id, toLifecycle(r), supervisor.Config{
		Machine:  h.machine,
		Executor: executor{h},
		Save: func(ctx context.Context, p lifecycle.Program, from lifecycle.State, reason string) error {
			return h.save(ctx, id, p, from, reason)
		},
		Observe: h.observe,
		Logger:  h.log,
	})
	h.sups[id] = s
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		s.Run(h.ctx)
		h.mu.Lock()
		if h.sups[id] == s {
			delete(h.sups, id)
		}
		h.mu.Unlock()
	}()
	return s
}

// save persists a lifecycle change: state changes go with a transition row
// in one transaction.
func (h *Host) save(ctx context.Context, id string, p lifecycle.Program, from lifecycle.State, reason string) error {
	ctx = context.WithoutCancel(ctx) // a change that happened must be recorded even during shutdown
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	h.mu.Lock()
	row, ok := h.rows[id]
	h.mu.Unlock()
	if !ok {
		if p.State == lifecycle.Deleting {
			return nil // purged
		}
		return fmt.Errorf("host: no record of %s", id)
	}
	next := fromLifecycle(row, p, h.opts.Runtime)
	var err error
	if string(from) != next.State {
		next, err = h.store.SaveTransition(ctx, next, string(from), next.State, reason)
	} else {
		next, err = h.store.UpdateProgram(ctx, next)
	}
	if errors.Is(err, store.ErrNotFound) && p.State == lifecycle.Deleting {
		return nil // purged: the record is gone on purpose
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	if _, still := h.rows[id]; still {
		h.rows[id] = next
	}
	h.mu.Unlock()
	return nil
}

func (h *Host) observe(id string, prev, next lifecycle.Program, ev lifecycle.Event) {
	if prev.State != next.State {
		h.log.Info("program state", "program", id, "from", prev.State, "to", next.State, "error", next.ErrorMsg)
	}
	h.subsMu.Lock()
	subs := h.subs
	h.subsMu.Unlock()
	for _, fn := range subs {
		fn(Change{ProgramID: id, Prev: prev, Next: next})
	}
}

// ReadyPrograms lists the programs that are Ready now.
func (h *Host) ReadyPrograms() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for id, s := range h.sups {
		if s.Program().State == lifecycle.Ready {
			ids = append(ids, id)
		}
	}
	return ids
}

// Change is one persisted change of a program's lifecycle, as Subscribe
// delivers it.
type Change struct {
	ProgramID  string
	Prev, Next lifecycle.Program
}

// Subscribe calls fn with every persisted change of every program, from
// the programs' supervisor loops, in each program's order; fn must not
// block. Changes made before the call are not replayed: read the programs'
// current state after subscribing. It returns the function that ends the
// subscription.
func (h *Host) Subscribe(fn func(Change)) (cancel func()) {
	h.subsMu.Lock()
	defer h.subsMu.Unlock()
	h.subSeq++
	key := h.subSeq
	h.subs = maps.Clone(h.subs)
	if h.subs == nil {
		h.subs = map[int]func(Change){}
	}
	h.subs[key] = fn
	return func() {
		h.subsMu.Lock()
		defer h.subsMu.Unlock()
		h.subs = maps.Clone(h.subs)
		delete(h.subs, key)
	}
}

func (h *Host) sup(id string) (*supervisor.Supervisor, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sups[id]
	if !ok {
		return nil, fmt.Errorf("program %s: %w", id, ErrNotFound)
	}
	return s, nil
}

// Get returns a program's record.
func (h *Host) Get(ctx context.Context, id string) (store.Program, error) {
	return h.store.GetProgram(ctx, id)
}

// List returns programs (sorted by creation) and the total matching.
func (h *Host) List(ctx context.Context, f store.ProgramFilter) ([]store.Program, int, error) {
	return h.store.ListPrograms(ctx, f)
}

// Transitions returns a program's state history, oldest first.
func (h *Host) Transitions(ctx context.Context, id string, limit int) ([]store.Transition, error) {
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return nil, err
	}
	return h.store.ListTransitions(ctx, id, limit)
}

// command sends a user command to a program's supervisor, whose reducer
// admits it or refuses it (ErrConflict) on the program's current state;
// guard, when not nil, is asked once the reducer admits it (see
// supervisor.Supervisor.Do).
func (h *Host) command(ctx context.Context, id string, cmd lifecycle.Event, guard func() error) (store.Program, error) {
	s, err := h.sup(id)
	if err != nil {
		return store.Program{}, err
	}
	if _, err := s.Do(ctx, cmd, guard); err != nil {
		if errors.Is(err, supervisor.ErrGone) {
			return store.Program{}, fmt.Errorf("program %s: %w", id, ErrNotFound)
		}
		return store.Program{}, err
	}
	return h.current(ctx, id)
}

// Owner returns the user who owns program id, from memory when the program
// is supervised (an owner never changes), so the WatcherAPI proxy's
// ownership check costs no database read.
func (h *Host) Owner(ctx context.Context, id string) (string, error) {
	r, err := h.current(ctx, id)
	if err != nil {
		return "", err
	}
	return r.UserID, nil
}

// current returns the latest saved row, from memory when possible.
func (h *Host) current(ctx context.Context, id string) (store.Program, error) {
	h.mu.Lock()
	r, ok := h.rows[id]
	h.mu.Unlock()
	if ok {
		return r, nil
	}
	return h.store.GetProgram(ctx, id)
}

func newInstanceID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
