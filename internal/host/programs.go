package host

import (
	"context"
	"slices"
	"strings"

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

// Get returns a program's record, from memory as List does: the latest
// saved one, or the latest change when the store refused it (save).
func (h *Host) Get(ctx context.Context, id string) (store.Program, error) {
	return h.current(ctx, id)
}

// List returns programs (sorted by creation) and the total matching. It
// reads the Host's memory, where every program has its latest saved record
// from Open to Close, so a list costs no database read (GET /programs is
// the call a dashboard repeats). The store answers the same query the same
// way (TestListFromMemory holds them equal).
func (h *Host) List(ctx context.Context, f store.ProgramFilter) ([]store.Program, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	h.mu.Lock()
	var match []store.Program
	for _, r := range h.rows {
		if (f.UserID == "" || r.UserID == f.UserID) && (f.State == "" || r.State == f.State) {
			match = append(match, r)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(match, func(a, b store.Program) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	total := len(match)
	from := min(max(f.Offset, 0), total)
	to := total
	if f.Limit > 0 {
		to = min(from+f.Limit, total)
	}
	return slices.Clip(match[from:to]), total, nil
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

// current returns the program's row from memory when it is supervised,
// else from the store.
func (h *Host) current(ctx context.Context, id string) (store.Program, error) {
	h.mu.Lock()
	r, ok := h.rows[id]
	h.mu.Unlock()
	if ok {
		return r, nil
	}
	return h.store.GetProgram(ctx, id)
}
