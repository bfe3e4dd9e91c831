package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

type programView struct {
	ProgramID     string                  `json:"program_id"`
	BuildID       string                  `json:"build_id"`
	UserID        string                  `json:"user_id"`
	State         lifecycle.State         `json:"state"`
	ImageID       string                  `json:"image_id"`
	ContainerID   string                  `json:"container_id"`
	ProxyURL      string                  `json:"proxy_url"`
	ProxyPort     int                     `json:"proxy_port,omitempty"` // loopback port to the WatcherAPI (--proxy-ports)
	ErrorMsg      string                  `json:"error_msg"`
	CreatedAt     time.Time               `json:"created_at"`
	UpdatedAt     time.Time               `json:"updated_at"`
	Runtime       string                  `json:"runtime"`
	RestartPolicy lifecycle.RestartPolicy `json:"restart_policy"`
	RestartCount  int                     `json:"restart_count"`
	NextRestartAt *time.Time              `json:"next_restart_at"`
	LastExitCode  *int                    `json:"last_exit_code"`
	LastOOM       bool                    `json:"last_oom"`
	Options       store.Options           `json:"options"`
	// QueuePosition: while Building, n when the build waits for a build
	// slot with n-1 builds ahead of it (0: running, or not building).
	QueuePosition int `json:"queue_position,omitempty"`
	// What the program stores in /state, and its size cap (absent when
	// the Host runs with uncapped /state).
	StateBytesUsed  *int64 `json:"state_bytes_used,omitempty"`
	StateBytesLimit *int64 `json:"state_bytes_limit,omitempty"`
	// Seq grows with every action the Host takes for the program (a build,
	// a launch, a probe, a halt, a timer): a view or event whose seq is at
	// least the one an action's answer gave reflects that action or later.
	Seq uint64 `json:"seq"`
	// WatcherAPI, while Ready: whether the program's WatcherAPI answered
	// the Host's last check (host.Host.Answering), and since when.
	WatcherAPI *watcherAnswer `json:"watcher_api,omitempty"`
}

type watcherAnswer struct {
	Answering bool      `json:"answering"`
	Since     time.Time `json:"since"`
	Problem   string    `json:"problem,omitempty"`
}

func (s *server) proxyURL(id string) string { return s.opts.ProxyBase + "/programs/" + id + "/proxy" }

// view is a program as the API shows it, its /state usage read now.
func (s *server) view(p store.Program) programView {
	v := s.bareView(p)
	if u, ok := s.h.StateUsage(p); ok {
		v.StateBytesUsed, v.StateBytesLimit = &u.Used, &u.Limit
	}
	return v
}

// listView is view for GET /programs, which may show a /state usage a
// couple of seconds old (Host.StateUsageRecent): a list of a thousand
// programs would otherwise pay a thousand statfs calls.
func (s *server) listView(p store.Program) programView {
	v := s.bareView(p)
	if u, ok := s.h.StateUsageRecent(p); ok {
		v.StateBytesUsed, v.StateBytesLimit = &u.Used, &u.Limit
	}
	return v
}

// bareView is a program as the API shows it, without its /state usage.
func (s *server) bareView(p store.Program) programView {
	o := p.Options
	if o.Env != nil {
		// Values may be sensitive: names only.
		masked := make(map[string]string, len(o.Env))
		for k := range o.Env {
			masked[k] = "***"
		}
		o.Env = masked
	}
	queued := 0
	if p.State == lifecycle.Building {
		queued = s.h.QueuePosition(p.BuildID)
	}
	v := programView{
		QueuePosition: queued,
		ProgramID:     p.ID, BuildID: p.BuildID, UserID: p.UserID, State: p.State, ImageID: p.ImageID,
		ContainerID: p.ContainerID, ProxyURL: s.proxyURL(p.ID), ErrorMsg: s.h.RelPaths(p.ErrorMsg),
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, Runtime: p.Runtime, RestartPolicy: p.Policy,
		RestartCount: p.RestartCount, NextRestartAt: timePtr(p.NextRestartAt), LastExitCode: p.LastExitCode,
		LastOOM: p.LastOOM, Options: o, ProxyPort: s.ports.port(p.ID), Seq: p.Seq,
	}
	if p.State == lifecycle.Ready {
		if a, ok := s.h.Answering(p.ID); ok {
			v.WatcherAPI = &watcherAnswer{Answering: a.Answering, Since: a.Since, Problem: a.Problem}
		}
	}
	return v
}

// timePtr shows the zero time as null.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// program loads the program named in the path and checks that the caller
// owns it; another user's program is reported as not found.
func (s *server) program(w http.ResponseWriter, r *http.Request, p principal) (store.Program, bool) {
	id := r.PathValue("id")
	row, err := s.h.Get(r.Context(), id)
	if !s.visible(w, id, row.UserID, err, p) {
		return store.Program{}, false
	}
	return row, true
}

// visible answers 404 (or the lookup's error) unless program id, owned by
// owner, may be seen by p: its owner or the admin. Another user's program
// is a 404, exactly like a missing one.
func (s *server) visible(w http.ResponseWriter, id, owner string, err error, p principal) bool {
	if err == nil && !p.Admin && owner != p.UserID {
		err = host.ErrNotFound
	}
	if err != nil {
		if errors.Is(err, host.ErrNotFound) {
			writeError(w, http.StatusNotFound, "program "+id+" not found")
		} else {
			s.fail(w, err)
		}
		return false
	}
	return true
}

type programBody struct {
	UserID        string            `json:"user_id"`
	Dockerfile    string            `json:"dockerfile"`
	SrcFiles      map[string]string `json:"src_files"`
	Network       bool              `json:"network"`
	MemoryBytes   int64             `json:"memory_bytes"`
	CPUs          float64           `json:"cpus"`
	RestartPolicy string            `json:"restart_policy"`
	Env           map[string]string `json:"env"`
	StateBytes    int64             `json:"state_bytes"` // size cap of /state (0: the Host's default)
}

func (s *server) createProgram(w http.ResponseWriter, r *http.Request, p principal) {
	release, ok := s.bulk(w, r)
	if !ok {
		return
	}
	defer release()
	var b programBody
	if !decode(w, r, maxSourceBody, &b) {
		return
	}
	uid := b.UserID
	switch {
	case uid == "":
		uid = p.UserID
	case uid != p.UserID && !p.Admin:
		writeError(w, http.StatusForbidden, "user_id must be your own ("+p.UserID+")")
		return
	}
	row, err := s.h.Create(r.Context(), host.CreateRequest{
		UserID: uid, By: p.UserID, Dockerfile: b.Dockerfile, Files: source.Files(b.SrcFiles),
		Options: host.ProgramOptions{
			Network: b.Network, MemoryBytes: b.MemoryBytes, CPUs: b.CPUs,
			RestartPolicy: b.RestartPolicy, Env: b.Env, StateBytes: b.StateBytes,
		},
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"program_id": row.ID, "build_id": row.BuildID, "state": row.State,
		"proxy_url": s.proxyURL(row.ID), "created_at": row.CreatedAt,
	})
}

func (s *server) listPrograms(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	f := store.ProgramFilter{State: lifecycle.State(q.Get("state")), UserID: q.Get("user_id"), Limit: 100}
	for _, x := range []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &f.Limit, 1000}, {"offset", &f.Offset, 1 << 30}} {
		if v := q.Get(x.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > x.max {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be an integer between 0 and %d", x.name, x.max))
				return
			}
			*x.dst = n
		}
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.State != "" && !slices.Contains(lifecycle.States, f.State) {
		writeError(w, http.StatusBadRequest, "unknown state "+strconv.Quote(string(f.State)))
		return
	}
	if !p.Admin {
		if f.UserID != "" && f.UserID != p.UserID {
			// Another user's programs: none visible.
			writeJSON(w, http.StatusOK, map[string]any{"programs": []programView{}, "count": 0, "total": 0})
			return
		}
		f.UserID = p.UserID
	}
	rows, total, err := s.h.List(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]programView, 0, len(rows))
	for _, row := range rows {
		out = append(out, s.listView(row))
	}
	writeJSON(w, http.StatusOK, map[string]any{"programs": out, "count": len(out), "total": total})
}

func (s *server) getProgram(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.view(row))
}

func (s *server) deleteProgram(w http.ResponseWriter, r *http.Request, p principal) {
	row, ok := s.program(w, r, p)
	if !ok {
		return
	}
	if err := s.h.DeleteWith(r.Context(), row.ID, host.DeleteOptions{KeepState: isTrue(r.URL.Query().Get("keep_state"))}); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"program_id": row.ID, "status": "deleted"})
}

func isTrue(v string) bool { return v == "1" || v == "true" || v == "yes" }

// ---- secrets ----
