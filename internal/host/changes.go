package host

import (
	"maps"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

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
