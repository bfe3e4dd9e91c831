package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// GET /events: program changes as server-sent events, so that clients (the
// CLI's waits, the dashboard) follow programs without polling. The stream
// opens with the current view of every program the caller may see ("program"
// events with no prev_state), then a "synced" event, then one "program"
// event per persisted change, "build" events while a program's Go build
// runs (packages compiled, time), a "stats" event with each new sample of
// a running program's resources (the samples of GET /programs/{id}/stats),
// and a "deleted" event when a program's record is gone. Restarts show in a program's restart_count. A caller sees its own programs; the admin sees all, or one
// user's with ?user_id=. ?program_id= narrows the stream to one program
// (404 when the caller may not see it). A stream counts as one of the
// caller's follows (429 beyond the cap).
//
// A client that reads too slowly to keep up is sent an "overflow" event and
// the stream ends: reconnect and start again from the new snapshot. Nothing
// is silently skipped.

// eventBuffer is how many changes a stream holds for its client before it
// overflows. A change is a few hundred bytes; a thousand programs starting
// at once make about four changes each.
const eventBuffer = 4096

// eventPing is how often an idle stream sends a comment, so that proxies
// keep it open and a vanished client is noticed.
const eventPing = 25 * time.Second

// eventView is the data of a "program" event: the program as GET
// /programs/{id} shows it, and the state it left.
type eventView struct {
	programView
	PrevState lifecycle.State `json:"prev_state,omitempty"`
}

// buildProgress is the data of a "build" event: how far a program's Go
// build is (sent when go build starts, every couple of seconds while it
// runs, and when it ends).
type buildProgress struct {
	ProgramID string `json:"program_id"`
	BuildID   string `json:"build_id"`
	Packages  int    `json:"packages"`   // compiled so far; cached ones are not counted
	ElapsedMS int64  `json:"elapsed_ms"` // since go build started
	Done      bool   `json:"done"`
}

func buildEvent(c host.Change) buildProgress {
	return buildProgress{
		ProgramID: c.ProgramID, BuildID: c.Build.BuildID, Packages: c.Build.Packages,
		ElapsedMS: c.Build.Elapsed.Milliseconds(), Done: c.Build.Done,
	}
}

// eventStream is one client's buffered queue of changes.
type eventStream struct {
	mu       sync.Mutex
	queue    []streamItem
	overflow bool
	wake     chan struct{} // one token: the queue is not empty, or overflowed
}

// streamItem is a change of a program, or (stats set) a new sample of its
// resources.
type streamItem struct {
	change host.Change
	stats  *host.ProgramSample
}

// push is the Host subscription: it never blocks.
func (e *eventStream) push(c streamItem) {
	e.mu.Lock()
	if len(e.queue) >= eventBuffer {
		e.overflow = true
	} else if !e.overflow {
		e.queue = append(e.queue, c)
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// take returns what is queued, and whether the stream overflowed.
func (e *eventStream) take(buf []streamItem) ([]streamItem, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	buf = append(buf[:0], e.queue...)
	clear(e.queue)
	e.queue = e.queue[:0]
	return buf, e.overflow
}

func (s *server) events(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	onlyID, onlyUser := q.Get("program_id"), q.Get("user_id")
	// Another user's programs: none visible, as GET /programs says.
	none := !p.Admin && onlyUser != "" && onlyUser != p.UserID
	if !p.Admin {
		onlyUser = p.UserID
	}
	if onlyID != "" {
		owner, err := s.h.Owner(r.Context(), onlyID)
		if !s.visible(w, onlyID, owner, err, p) {
			return
		}
	}
	wants := func(id, owner string) bool {
		return !none && (onlyID == "" || id == onlyID) && (onlyUser == "" || owner == onlyUser)
	}
	release, err := s.acquireFollow(p)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer release()

	es := &eventStream{wake: make(chan struct{}, 1)}
	rows, cancel := s.h.SubscribeWithPrograms(func(c host.Change) {
		if wants(c.ProgramID, c.UserID) {
			es.push(streamItem{change: c})
		}
	})
	defer cancel()
	cancelStats := s.h.SubscribeStats(func(ps host.ProgramSample) {
		if wants(ps.ProgramID, ps.UserID) {
			es.push(streamItem{stats: &ps})
		}
	})
	defer cancelStats()
	rows = slices.DeleteFunc(rows, func(r store.Program) bool { return !wants(r.ID, r.UserID) })
	slices.SortFunc(rows, func(a, b store.Program) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	ctl := http.NewResponseController(w)
	ctl.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	bw := bufio.NewWriterSize(w, 16<<10)
	enc := json.NewEncoder(bw)
	send := func(event string, v any) {
		bw.WriteString("event: ")
		bw.WriteString(event)
		bw.WriteString("\ndata: ")
		enc.Encode(v) // ends the line; JSON holds no raw newline
		bw.WriteByte('\n')
	}
	flush := func() bool { return bw.Flush() == nil && ctl.Flush() == nil }

	// The snapshot. A change saved just before it may be delivered as well;
	// it is dropped when the program already shows it.
	last := make(map[string]lifecycle.Program, len(rows))
	for _, row := range rows {
		last[row.ID] = row.Program
		send("program", eventView{programView: s.listView(row)})
	}
	send("synced", struct{}{})
	if !flush() {
		return
	}

	ping := time.NewTicker(eventPing)
	defer ping.Stop()
	var batch []streamItem
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			bw.WriteString(": ping\n\n")
			if !flush() {
				return
			}
			continue
		case <-es.wake:
		}
		var overflow bool
		batch, overflow = es.take(batch)
		for _, item := range batch {
			if item.stats != nil {
				send("stats", statsEventOf(*item.stats))
				continue
			}
			c := item.change
			if c.Build != nil {
				send("build", buildEvent(c))
				continue
			}
			if c.Deleted {
				delete(last, c.ProgramID)
				send("deleted", map[string]string{"program_id": c.ProgramID})
				continue
			}
			if prev, ok := last[c.ProgramID]; ok && prev == c.Next {
				continue // the snapshot already showed it
			}
			last[c.ProgramID] = c.Next
			send("program", eventView{programView: s.listView(c.Row), PrevState: c.Prev.State})
		}
		if overflow {
			send("overflow", map[string]string{"message": "the client read too slowly; reconnect for a new snapshot"})
			flush()
			return
		}
		if !flush() {
			return
		}
	}
}
