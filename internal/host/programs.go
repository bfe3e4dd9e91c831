package host

import (
	"context"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

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
