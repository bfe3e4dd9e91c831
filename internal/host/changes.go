package host

import (
	"maps"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// observe is each supervisor's Observer: it logs state changes and tells
// the subscribers.
func (h *Host) observe(c Change) {
	if c.Prev.State != c.Next.State {
		h.log.Info("program state", "program", c.ProgramID, "from", c.Prev.State, "to", c.Next.State, "error", c.Next.ErrorMsg)
	}
	h.subsMu.Lock()
	subs := h.subs
	h.subsMu.Unlock()
	for _, fn := range subs {
		fn(c)
	}
}

// Change is one persisted change of a program's lifecycle, as Subscribe
// delivers it. A program's first Change (its create) has a zero Prev; its
// last (once its record is gone) has Deleted set.
type Change struct {
	ProgramID string
	UserID    string // the owner
	At        time.Time
	// Prev is the program before the change, Next after it.
	Prev, Next lifecycle.Program
	// Row is the program's record after the change (zero when Deleted).
	Row     store.Program
	Deleted bool
	// Build, when set, is how far the program's Go build is: Prev, Next
	// and Row are the program as it was, unchanged (Building).
	Build *BuildProgress
}

// BuildProgress is how far a program's Go build is (builder.Progress).
type BuildProgress struct {
	BuildID  string
	Packages int           // packages compiled so far (cached ones are not counted)
	Elapsed  time.Duration // since go build started
	Done     bool          // go build has ended
}

// publishProgress tells the subscribers how far program id's build is.
func (h *Host) publishProgress(id string, p BuildProgress) {
	h.mu.Lock()
	row, ok := h.rows[id]
	h.mu.Unlock()
	if !ok {
		return
	}
	h.observe(Change{ProgramID: id, UserID: row.UserID, At: time.Now(), Prev: row.Program, Next: row.Program, Row: row, Build: &p})
}

// Subscribe calls fn with every persisted change of every program, from
// the programs' supervisor loops, in each program's order; fn must not
// block. Changes made before the call are not replayed: read the programs'
// current state after subscribing. It returns the function that ends the
// subscription.
func (h *Host) Subscribe(fn func(Change)) (cancel func()) {
	h.subsMu.Lock()
	defer h.subsMu.Unlock()
	return h.subscribeLocked(fn)
}

func (h *Host) subscribeLocked(fn func(Change)) (cancel func()) {
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

// SubscribeWithPrograms is Subscribe, and also returns the record of every
// supervised program as it is when fn starts to hear of changes: a change
// not reflected in those records reaches fn. The one saved just before the
// call may reach fn too, with a Next equal to the record's Program.
func (h *Host) SubscribeWithPrograms(fn func(Change)) (rows []store.Program, cancel func()) {
	h.subsMu.Lock()
	defer h.subsMu.Unlock()
	h.mu.Lock()
	rows = make([]store.Program, 0, len(h.rows))
	for _, r := range h.rows {
		rows = append(rows, r)
	}
	h.mu.Unlock()
	return rows, h.subscribeLocked(fn)
}
