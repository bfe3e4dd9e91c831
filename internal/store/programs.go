package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// validRuntimes are the container runtimes a row may name (driver's
// runsc and runc; "" before the first start).
var validRuntimes = map[string]bool{"": true, "runsc": true, "runc": true}

// Options are a program's per-program settings, stored as JSON.
type Options struct {
	Network     bool              `json:"network"`      // outbound network granted
	MemoryBytes int64             `json:"memory_bytes"` // 0: the Host's default
	CPUs        float64           `json:"cpus"`         // 0: the Host's default
	Env         map[string]string `json:"env,omitempty"`
	StateBytes  int64             `json:"state_bytes,omitempty"` // size cap of /state; 0: the Host's default
}

// Program is one row of the programs table: who owns it, the lifecycle's
// view of it (declared once, in package lifecycle: state, desired state,
// build, image, container, restart bookkeeping) and what the Host adds.
// The lifecycle's Waiting is not stored: whatever was in flight died with
// the Host that started it, and Recover starts afresh.
type Program struct {
	ID     string // program_id
	UserID string
	lifecycle.Program
	Runtime   string // runsc | runc | "" (never started)
	Options   Options
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ProgramFilter selects programs for ListPrograms. Empty fields match all;
// Limit <= 0 means no limit.
type ProgramFilter struct {
	UserID string
	State  lifecycle.State
	Limit  int
	Offset int
}

// Transition is one row of a program's state history.
type Transition struct {
	ID        int64
	ProgramID string
	From      lifecycle.State
	To        lifecycle.State
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
		created, updated, seq         int64
	)
	err := sc.Scan(&p.ID, &p.UserID, &p.BuildID, &p.State, &p.Desired, &p.ImageID, &p.ContainerID, &p.Runtime,
		&p.ErrorMsg, &p.Policy, &p.RestartCount, &next, &exit, &p.LastOOM,
		&finished, &healthy, &opts, &seq, &p.StartAfterStop, &created, &updated)
	if err != nil {
		return Program{}, err
	}
	p.Seq = uint64(seq)
	p.NextRestartAt = fromNullTime(next)
	p.LastExitAt = fromNullTime(finished)
	p.HealthySince = fromNullTime(healthy)
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
	case !slices.Contains(lifecycle.States, p.State):
		return invalid("program %s: unknown state %q", p.ID, p.State)
	case p.Desired != lifecycle.DesiredRunning && p.Desired != lifecycle.DesiredStopped:
		return invalid("program %s: unknown desired state %q", p.ID, p.Desired)
	case !validRuntimes[p.Runtime]:
		return invalid("program %s: unknown runtime %q", p.ID, p.Runtime)
	case !validPolicy(p.Policy):
		return invalid("program %s: unknown restart policy %q", p.ID, p.Policy)
	case p.RestartCount < 0:
		return invalid("program %s: negative restart count", p.ID)
	}
	return nil
}

func validPolicy(p lifecycle.RestartPolicy) bool {
	_, err := lifecycle.ParseRestartPolicy(string(p))
	return p != "" && err == nil
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
		p.State = lifecycle.Created
	}
	if p.Desired == "" {
		p.Desired = lifecycle.DesiredStopped
	}
	if p.Policy == "" {
		p.Policy = lifecycle.RestartOnFailure
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
			p.ErrorMsg, p.Policy, p.RestartCount, toNullTime(p.NextRestartAt), nullInt(p.LastExitCode), p.LastOOM,
			toNullTime(p.LastExitAt), toNullTime(p.HealthySince), opts, int64(p.Seq), p.StartAfterStop,
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
// stamps updated_at (strictly increasing per row).
func (s *Store) updateProgram(ctx context.Context, tx *sql.Tx, p Program) (Program, error) {
	if err := validateProgram(&p); err != nil {
		return Program{}, err
	}
	opts, err := optionsJSON(p.Options)
	if err != nil {
		return Program{}, err
	}
	args := []any{p.UserID, p.BuildID, p.State, p.Desired, p.ImageID, p.ContainerID, p.Runtime,
		p.ErrorMsg, p.Policy, p.RestartCount, toNullTime(p.NextRestartAt), nullInt(p.LastExitCode),
		p.LastOOM, toNullTime(p.LastExitAt), toNullTime(p.HealthySince), opts, int64(p.Seq), p.StartAfterStop,
		toNanos(s.stamp()), p.ID}
	return scanProgram(tx.QueryRowContext(ctx, updateProgramSQL+` RETURNING `+programCols, args...))
}

// UpdateProgram overwrites the program's row (every field but ID and
// CreatedAt) and stamps UpdatedAt. It returns the row as stored, or
// ErrNotFound.
func (s *Store) UpdateProgram(ctx context.Context, p Program) (Program, error) {
	var out Program
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.updateProgram(ctx, tx, p)
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
func (s *Store) SaveTransition(ctx context.Context, p Program, from, to lifecycle.State, reason string) (Program, error) {
	p.State = to
	if !slices.Contains(lifecycle.States, from) {
		return Program{}, wrap("save transition", invalid("program %s: unknown from state %q", p.ID, from))
	}
	var out Program
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.updateProgram(ctx, tx, p)
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
