package host

import (
	"context"
	"net"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// What the API's WatcherAPI proxy asks of the Host on every request, from
// memory: who owns the program and which container serves it now. The
// proxy keeps one transport per program container (package api) and dials
// through DialWatcher, so the Host's shared transport (watcherapi.go)
// serves only the readiness probe.

// ProxyTarget is what the proxy needs to know of a program.
type ProxyTarget struct {
	Owner string
	State lifecycle.State
	// ContainerID serves the program's WatcherAPI; "" unless the program
	// is Ready.
	ContainerID string
}

// ProxyTarget returns program id's owner, state and, while it is Ready,
// the container that serves its WatcherAPI. The error is for a program
// that cannot be found (ErrNotFound) or read, never for its state: the
// caller checks ownership first, so a stranger learns nothing else.
//
// Ready means that the program's supervisor and its last saved record
// agree: a change is saved, then shown by the supervisor, then told to the
// Host's subscribers (Subscribe). So once a subscriber has heard that a
// program is Ready, ProxyTarget names its container; once it has heard
// that the program left Ready or its container, ProxyTarget no longer
// names that container. A cache filled from ProxyTarget and emptied by a
// subscriber cannot keep a gone container if it asks ProxyTarget again
// after each addition.
func (h *Host) ProxyTarget(ctx context.Context, id string) (ProxyTarget, error) {
	h.mu.Lock()
	row, known := h.rows[id]
	s := h.sups[id]
	h.mu.Unlock()
	if !known {
		// Not supervised (yet, or any more): the store has the last word
		// on whether it exists and whose it is.
		r, err := h.store.GetProgram(ctx, id)
		if err != nil {
			return ProxyTarget{}, err
		}
		return ProxyTarget{Owner: r.UserID, State: r.State}, nil
	}
	t := ProxyTarget{Owner: row.UserID, State: row.State}
	if s == nil {
		return t, nil
	}
	p := s.Program()
	t.State = p.State
	if p.State == lifecycle.Ready && p.ContainerID != "" &&
		row.State == lifecycle.Ready && row.ContainerID == p.ContainerID {
		t.ContainerID = p.ContainerID
	}
	return t, nil
}

// DialWatcher connects to the WatcherAPI inside container cid's network
// namespace (127.0.0.1:8080 there), as the readiness probe does.
func (h *Host) DialWatcher(ctx context.Context, cid string) (net.Conn, error) {
	return h.driver.DialContext(ctx, cid, watcherAddr)
}
