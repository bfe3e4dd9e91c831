package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Program states (the lifecycle's states).
const (
	StateCreated  = "Created"
	StateBuilding = "Building"
	StateStarting = "Starting"
	StateReady    = "Ready"
	StateStopping = "Stopping"
	StateStopped  = "Stopped"
	StateError    = "Error"
	StateDeleting = "Deleting"
)

// Desired states.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// Container runtimes. A program that has never been started has Runtime "".
const (
	RuntimeRunsc = "runsc"
	RuntimeRunc  = "runc"
)

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

var (
	validStates   = set(StateCreated, StateBuilding, StateStarting, StateReady, StateStopping, StateStopped, StateError, StateDeleting)
	validDesired  = set(DesiredRunning, DesiredStopped)
	validRuntimes = set("", RuntimeRunsc, RuntimeRunc)
	validPolicies = set(RestartAlways, RestartOnFailure, RestartNever)
)

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// Options are a program's per-program settings, stored as JSON.
type Options struct {
	Network     bool              `json:"network"`      // outbound network granted
	MemoryBytes int64             `json:"memory_bytes"` // 0: the Host's default
	CPUs        float64           `json:"cpus"`         // 0: the Host's default
	Env         map[string]string `json:"env,omitempty"`
	StateBytes  int64             `json:"state_bytes,omitempty"` // size cap of /state; 0: the Host's default
}

// Program is one row of the programs table.
type Program struct {
	ID             string // program_id
	UserID         string
	BuildID        string
	State          string // Created, Building, Starting, Ready, Stopping, Stopped, Error
	Desired        string // running | stopped
	ImageID        string
	ContainerID    string
	Runtime        string // runsc | runc | "" (never started)
	ErrorMsg       string
	RestartPolicy  string // always | on-failure | never
	RestartCount   int
	NextRestartAt  *time.Time
	LastExitCode   *int
	LastOOM        bool
	LastFinishedAt *time.Time
	HealthySince   *time.Time
	Options        Options
	EffectSeq      int64 // id of the latest lifecycle effect
	StartAfterStop bool  // a restart in progress: start again once stopped
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// ProgramFilter selects programs for ListPrograms. Empty fields match all;
// Limit <= 0 means no limit.
type ProgramFilter struct {
	UserID string
	State  string
	Limit  int
	Offset int
}

// Transition is one row of a program's state history.
type Transition struct {
	ID        int64
	ProgramID string
	From      string
	To        string
	Reason    string
	At        time.Time
}

const programCols = `program_id, user_id, build_id, state, desired, image_id, container_id, runtime,
	error_msg, restart_policy, restart_count, next_restart_at, last_exit_code, last_oom,
	last_finished_at, healthy_since, options, effect_seq, start_after_stop, created_at, updated_at`

func scanProgram(sc scanner) (Program, error) {
	var (
		p                             Program
		next, finished, healthy, exit sql.NullInt64
		opts                          string
		created, updated              int64
	)
	err := sc.Scan(&p.ID, &p.UserID, &p.BuildID, &p.State, &p.Desired, &p.ImageID, &p.ContainerID, &p.Runtime,
		&p.ErrorMsg, &p.RestartPolicy, &p.RestartCount, &next, &exit, &p.LastOOM,
		&finished, &healthy, &opts, &p.EffectSeq, &p.StartAfterStop, &created, &updated)
	if err != nil {
		return Program{}, err
	}
	p.NextRestartAt = fromNullNanos(next)
	p.LastFinishedAt = fromNullNanos(finished)
	p.HealthySince = fromNullNanos(healthy)
	if exit.Valid {
		c := int(exit.Int64)
		p.LastExitCode = &c
	}
	if err := json.Unmarshal([]byte(opts), &p.Options); err != nil {
		return Program{}, fmt.Errorf("program %s: options: %w", p.ID, err)
	}
	if len(p.Options.Env) == 0 {
		p.Options.Env = nil
	}
	p.CreatedAt = fromNanos(created)
	p.UpdatedAt = fromNanos(updated)
	return p, nil
}

func validateProgram(p *Program) error {
	switch {
	case p.ID == "":
		return invalid("empty program id")
	case p.UserID == "":
		return invalid("program %s: empty user id", p.ID)
	case !validStates[p.State]:
		return invalid("program %s: unknown state %q", p.ID, p.State)
	case !validDesired[p.Desired]:
		return invalid("program %s: unknown desired state %q", p.ID, p.Desired)
	case !validRuntimes[p.Runtime]:
		return invalid("program %s: unknown runtime %q", p.ID, p.Runtime)
	case !validPolicies[p.RestartPolicy]:
		return invalid("program %s: unknown restart policy %q", p.ID, p.RestartPolicy)
	case p.RestartCount < 0:
		return invalid("program %s: negative restart count", p.ID)
	}
	return nil
}

func optionsJSON(o Options) (string, error) {
	if len(o.Env) == 0 {
		o.Env = nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return "", invalid("options: %v", err)
	}
	return string(b), nil
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

// CreateProgram inserts a new program. Empty State, Desired and
// RestartPolicy default to Created, stopped and on-failure; zero CreatedAt
// defaults to now; UpdatedAt is set to CreatedAt. A duplicate id is
// ErrConflict. It returns the row as stored.
func (s *Store) CreateProgram(ctx context.Context, p Program) (Program, error) {
	if p.State == "" {
		p.State = StateCreated
	}
	if p.Desired == "" {
		p.Desired = DesiredStopped
	}
	if p.RestartPolicy == "" {
		p.RestartPolicy = RestartOnFailure
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = s.stamp()
	}
	p.UpdatedAt = p.CreatedAt
	if err := validateProgram(&p); err != nil {
		return Program{}, wrap("create program", err)
	}
	opts, err := optionsJSON(p.Options)
	if err != nil {
		return Program{}, wrap("create program", err)
	}
	var out Program
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `INSERT INTO programs (`+programCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING `+programCols,
			p.ID, p.UserID, p.BuildID, p.State, p.Desired, p.ImageID, p.ContainerID, p.Runtime,
			p.ErrorMsg, p.RestartPolicy, p.RestartCount, toNullNanos(p.NextRestartAt), nullInt(p.LastExitCode), p.LastOOM,
			toNullNanos(p.LastFinishedAt), toNullNanos(p.HealthySince), opts, p.EffectSeq, p.StartAfterStop,
			toNanos(p.CreatedAt), toNanos(p.UpdatedAt))
		var err error
		out, err = scanProgram(row)
		return err
	})
	if err != nil {
		return Program{}, wrap("create program "+p.ID, err)
	}
	return out, nil
}

// GetProgram returns one program, or ErrNotFound.
func (s *Store) GetProgram(ctx context.Context, id string) (Program, error) {
	p, err := scanProgram(s.readRow(ctx, `SELECT `+programCols+` FROM programs WHERE program_id = ?`, id))
	if err != nil {
		return Program{}, wrap("get program "+id, err)
	}
	return p, nil
}

// ListPrograms returns the programs matching f, sorted by creation time then
// id, and the total number of matching programs (ignoring Limit and Offset).
// Both come from one consistent snapshot.
func (s *Store) ListPrograms(ctx context.Context, f ProgramFilter) ([]Program, int, error) {
	if f.Offset < 0 {
		f.Offset = 0
	}
	var (
		out   []Program
		total int
	)
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM programs
WHERE (?1 = '' OR user_id = ?1) AND (?2 = '' OR state = ?2)`, f.UserID, f.State).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+programCols+` FROM programs
WHERE (?1 = '' OR user_id = ?1) AND (?2 = '' OR state = ?2)
ORDER BY created_at, program_id LIMIT ?3 OFFSET ?4`, f.UserID, f.State, limitArg(f.Limit), f.Offset)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanProgram(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, wrap("list programs", err)
	}
	return out, total, nil
}

const updateProgramSQL = `UPDATE programs SET
	user_id = ?, build_id = ?, state = ?, desired = ?, image_id = ?, container_id = ?, runtime = ?,
	error_msg = ?, restart_policy = ?, restart_count = ?, next_restart_at = ?, last_exit_code = ?,
	last_oom = ?, last_finished_at = ?, healthy_since = ?, options = ?, effect_seq = ?, start_after_stop = ?,
	updated_at = MAX(?, updated_at + 1)
WHERE program_id = ?`

// updateProgram writes every column of p but program_id and created_at and
// stamps updated_at (strictly increasing per row). With ifUnchanged, the
// stored updated_at must equal p.UpdatedAt.
func (s *Store) updateProgram(ctx context.Context, tx *sql.Tx, p Program, ifUnchanged bool) (Program, error) {
	if err := validateProgram(&p); err != nil {
		return Program{}, err
	}
	opts, err := optionsJSON(p.Options)
	if err != nil {
		return Program{}, err
	}
	q := updateProgramSQL
	args := []any{p.UserID, p.BuildID, p.State, p.Desired, p.ImageID, p.ContainerID, p.Runtime,
		p.ErrorMsg, p.RestartPolicy, p.RestartCount, toNullNanos(p.NextRestartAt), nullInt(p.LastExitCode),
		p.LastOOM, toNullNanos(p.LastFinishedAt), toNullNanos(p.HealthySince), opts, p.EffectSeq, p.StartAfterStop,
		toNanos(s.stamp()), p.ID}
	if ifUnchanged {
		q += ` AND updated_at = ?`
		args = append(args, toNanos(p.UpdatedAt))
	}
	out, err := scanProgram(tx.QueryRowContext(ctx, q+` RETURNING `+programCols, args...))
	if errors.Is(err, sql.ErrNoRows) && ifUnchanged {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM programs WHERE program_id = ?`, p.ID).Scan(&n); err != nil {
			return Program{}, err
		}
		if n > 0 {
			return Program{}, ErrStale
		}
		return Program{}, ErrNotFound
	}
	return out, err
}

// UpdateProgram overwrites the program's row (every field but ID and
// CreatedAt) and stamps UpdatedAt. It returns the row as stored, or
// ErrNotFound.
func (s *Store) UpdateProgram(ctx context.Context, p Program) (Program, error) {
	var out Program
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.updateProgram(ctx, tx, p, false)
		return err
	})
	if err != nil {
		return Program{}, wrap("update program "+p.ID, err)
	}
	return out, nil
}

// UpdateProgramIfUnchanged is UpdateProgram with an optimistic check: it
// succeeds only if the stored UpdatedAt still equals p.UpdatedAt (that is, p
// was read from the latest version of the row). Otherwise it returns
// ErrStale (which is also an ErrConflict) and writes nothing.
func (s *Store) UpdateProgramIfUnchanged(ctx context.Context, p Program) (Program, error) {
	var out Program
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.updateProgram(ctx, tx, p, true)
		return err
	})
	if err != nil {
		return Program{}, wrap("update program "+p.ID, err)
	}
	return out, nil
}

// SaveTransition persists a state change: in one transaction it overwrites
// the program's row like UpdateProgram (with State set to `to`) and appends
// the transition from → to with its reason, stamped with the row's new
// UpdatedAt. Either both are written or neither. It returns the row as
// stored, or ErrNotFound.
func (s *Store) SaveTransition(ctx context.Context, p Program, from, to, reason string) (Program, error) {
	p.State = to
	if !validStates[from] {
		return Program{}, wrap("save transition", invalid("program %s: unknown from state %q", p.ID, from))
	}
	var out Program
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.updateProgram(ctx, tx, p, false)
		if err != nil {
			return err
		}
		if s.hookAfterProgramUpdate != nil {
			if err := s.hookAfterProgramUpdate(); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO transitions (program_id, from_state, to_state, reason, at)
VALUES (?, ?, ?, ?, ?)`, p.ID, from, to, reason, toNanos(out.UpdatedAt))
		return err
	})
	if err != nil {
		return Program{}, wrap(fmt.Sprintf("save transition %s %s->%s", p.ID, from, to), err)
	}
	return out, nil
}

// DeleteProgram removes a program, its transitions and its secrets metadata.
// Its build row stays: the Host removes it together with the image once no
// program uses the build (UnusedBuilds). It returns ErrNotFound if the
// program does not exist.
func (s *Store) DeleteProgram(ctx context.Context, id string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, `DELETE FROM programs WHERE program_id = ?`, id)
	})
	return wrap("delete program "+id, err)
}

// AddTransition appends a transition without touching the program row
// (SaveTransition is what the supervisor uses). A zero At is now. A missing
// program is ErrNotFound.
func (s *Store) AddTransition(ctx context.Context, t Transition) (Transition, error) {
	if t.ProgramID == "" {
		return Transition{}, wrap("add transition", invalid("empty program id"))
	}
	if t.At.IsZero() {
		t.At = s.stamp()
	}
	t.At = fromNanos(toNanos(t.At))
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO transitions (program_id, from_state, to_state, reason, at)
VALUES (?, ?, ?, ?, ?) RETURNING id`, t.ProgramID, t.From, t.To, t.Reason, toNanos(t.At)).Scan(&t.ID)
	})
	if err != nil {
		return Transition{}, wrap("add transition "+t.ProgramID, err)
	}
	return t, nil
}

// ListTransitions returns a program's latest limit transitions (all when
// limit <= 0), oldest first. An unknown program has no transitions.
func (s *Store) ListTransitions(ctx context.Context, programID string, limit int) ([]Transition, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, program_id, from_state, to_state, reason, at FROM (
	SELECT * FROM transitions WHERE program_id = ? ORDER BY id DESC LIMIT ?
) ORDER BY id`, programID, limitArg(limit))
	if err != nil {
		return nil, wrap("list transitions "+programID, err)
	}
	defer rows.Close()
	var out []Transition
	for rows.Next() {
		var (
			t  Transition
			at int64
		)
		if err := rows.Scan(&t.ID, &t.ProgramID, &t.From, &t.To, &t.Reason, &at); err != nil {
			return nil, wrap("list transitions "+programID, err)
		}
		t.At = fromNanos(at)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list transitions "+programID, err)
	}
	return out, nil
}

// CountProgramsUsingImage counts the programs whose ImageID is imageID (the
// program being deleted included, if it still exists). An empty id matches
// nothing.
func (s *Store) CountProgramsUsingImage(ctx context.Context, imageID string) (int, error) {
	if imageID == "" {
		return 0, nil
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM programs WHERE image_id = ?`, imageID).Scan(&n)
	return n, wrap("count programs using image", err)
}

// CountProgramsUsingBuild counts the programs whose BuildID is buildID. An
// empty id matches nothing.
func (s *Store) CountProgramsUsingBuild(ctx context.Context, buildID string) (int, error) {
	if buildID == "" {
		return 0, nil
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM programs WHERE build_id = ?`, buildID).Scan(&n)
	return n, wrap("count programs using build", err)
}

// UserHasBuild reports whether some program of userID has buildID as its
// current build. Empty ids match nothing.
func (s *Store) UserHasBuild(ctx context.Context, userID, buildID string) (bool, error) {
	if userID == "" || buildID == "" {
		return false, nil
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM programs WHERE user_id = ? AND build_id = ?)`, userID, buildID).Scan(&n)
	return n != 0, wrap("look up build of user", err)
}
