package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/supervisor"
)

// supervise starts the supervisor of a stored program.
func (h *Host) supervise(r store.Program) *supervisor.Supervisor {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sups[r.ID]; ok {
		return s
	}
	h.rows[r.ID] = r
	id, owner := r.ID, r.UserID
	s := supervisor.New(id, r.Program, supervisor.Config{
		Machine:  h.machine,
		Executor: executor{h},
		Save: func(ctx context.Context, p lifecycle.Program, from lifecycle.State, reason string) error {
			return h.save(ctx, id, p, from, reason)
		},
		Observe: func(id string, prev, next lifecycle.Program, _ lifecycle.Event) {
			h.mu.Lock()
			row, ok := h.rows[id]
			h.mu.Unlock()
			if !ok {
				return // purged: the Deleted change follows
			}
			row.Program = next // as saved (or, when the save failed, as it is in memory)
			h.observe(Change{ProgramID: id, UserID: owner, At: time.Now(), Prev: prev, Next: next, Row: row})
		},
		Logger: h.log,
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
		if h.ctx.Err() == nil { // Run ends early only when the program is deleted
			h.observe(Change{ProgramID: id, UserID: owner, At: time.Now(), Prev: s.Program(), Deleted: true})
		}
	}()
	return s
}

// save persists a lifecycle change: state changes go with a transition row
// in one transaction.
//
// A change the store refuses (a full disk) has happened all the same: the
// Host's record shows it at once, and the store gets it at the program's
// next change or from the retry every persistRetry, with one transition
// from the state the store last had.
func (h *Host) save(ctx context.Context, id string, p lifecycle.Program, from lifecycle.State, reason string) error {
	ctx = context.WithoutCancel(ctx) // a change that happened must be recorded even during shutdown
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	h.mu.Lock()
	row, ok := h.rows[id]
	stored, behind := h.unsaved[id]
	h.mu.Unlock()
	if !ok {
		if p.State == lifecycle.Deleting {
			return nil // purged
		}
		return fmt.Errorf("host: no record of %s", id)
	}
	if behind && stored != from {
		from, reason = stored, reason+lateNote
	}
	next := row
	next.Program = p
	if p.ContainerID != "" {
		next.Runtime = h.opts.Runtime
	}
	saved, err := h.persist(ctx, next, from, reason)
	if errors.Is(err, store.ErrNotFound) && p.State == lifecycle.Deleting {
		return nil // purged: the record is gone on purpose
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, still := h.rows[id]; !still {
		return err
	}
	if err != nil {
		next.UpdatedAt = time.Now()
		h.rows[id] = next
		if !behind {
			h.unsaved[id] = from
		}
		return err
	}
	h.rows[id] = saved
	delete(h.unsaved, id)
	return nil
}

// lateReason is the reason of a transition written after the store had
// refused it; lateNote ends the reason of one written after the store had
// refused those before it.
const (
	lateReason = "recorded late: the store could not be written at the time"
	lateNote   = " (" + lateReason + ")"
)

// persist writes row, with a transition when its state is not from.
func (h *Host) persist(ctx context.Context, row store.Program, from lifecycle.State, reason string) (store.Program, error) {
	if from != row.State {
		return h.store.SaveTransition(ctx, row, from, row.State, reason)
	}
	return h.store.UpdateProgram(ctx, row)
}

// persistRetry is how often the Host writes, again, the programs whose
// last change the store refused (save), so that a program that changes no
// more is not left recorded in a state it has left; it does once more at
// Close.
const persistRetry = 2 * time.Second

func (h *Host) persistUnsaved() {
	h.mu.Lock()
	ids := make([]string, 0, len(h.unsaved))
	for id := range h.unsaved {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		h.persistOne(id)
	}
}

func (h *Host) persistOne(id string) {
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	h.mu.Lock()
	row, ok := h.rows[id]
	stored, behind := h.unsaved[id]
	h.mu.Unlock()
	if !ok || !behind {
		return
	}
	saved, err := h.persist(context.Background(), row, stored, lateReason)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, still := h.rows[id]; !still {
		delete(h.unsaved, id)
		return
	}
	if err != nil {
		return // the next round tries again
	}
	h.rows[id] = saved
	delete(h.unsaved, id)
	h.log.Info("program recorded late", "program", id, "state", row.State)
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
