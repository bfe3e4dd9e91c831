package store

import (
	"context"
	"database/sql"
	"time"
)

// Build statuses.
const (
	BuildBuilding = "building"
	BuildOK       = "ok"
	BuildFailed   = "failed"
)

var validBuildStatus = map[string]bool{BuildBuilding: true, BuildOK: true, BuildFailed: true}

// Build is one row of the builds table, keyed by the content-hash build id
// (shared by every program with the same source).
type Build struct {
	ID         string // build_id
	ImageID    string
	Status     string // building | ok | failed
	Error      string
	LogPath    string
	StartedAt  time.Time
	FinishedAt *time.Time
	Duration   time.Duration
}

const buildCols = `build_id, image_id, status, error, log_path, started_at, finished_at, duration_ns`

func scanBuild(sc scanner) (Build, error) {
	var (
		b        Build
		started  int64
		finished sql.NullInt64
		dur      int64
	)
	if err := sc.Scan(&b.ID, &b.ImageID, &b.Status, &b.Error, &b.LogPath, &started, &finished, &dur); err != nil {
		return Build{}, err
	}
	b.StartedAt = fromNanos(started)
	b.FinishedAt = fromNullNanos(finished)
	b.Duration = time.Duration(dur)
	return b, nil
}

// UpsertBuild inserts the build or replaces every field of an existing one.
// A zero StartedAt is now; a zero Duration with FinishedAt set is computed
// from the two. It returns the row as stored.
func (s *Store) UpsertBuild(ctx context.Context, b Build) (Build, error) {
	switch {
	case b.ID == "":
		return Build{}, wrap("upsert build", invalid("empty build id"))
	case !validBuildStatus[b.Status]:
		return Build{}, wrap("upsert build", invalid("build %s: unknown status %q", b.ID, b.Status))
	}
	if b.StartedAt.IsZero() {
		b.StartedAt = s.stamp()
	}
	if b.Duration == 0 && b.FinishedAt != nil && !b.FinishedAt.IsZero() {
		b.Duration = b.FinishedAt.Sub(b.StartedAt)
	}
	var out Build
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanBuild(tx.QueryRowContext(ctx, `INSERT INTO builds (`+buildCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (build_id) DO UPDATE SET
	image_id = excluded.image_id, status = excluded.status, error = excluded.error,
	log_path = excluded.log_path, started_at = excluded.started_at,
	finished_at = excluded.finished_at, duration_ns = excluded.duration_ns
RETURNING `+buildCols,
			b.ID, b.ImageID, b.Status, b.Error, b.LogPath, toNanos(b.StartedAt), toNullNanos(b.FinishedAt), int64(b.Duration)))
		return err
	})
	if err != nil {
		return Build{}, wrap("upsert build "+b.ID, err)
	}
	return out, nil
}

// ListBuilds returns the builds with the given status (all when status is
// ""), oldest first. Reconciliation uses ListBuilds(ctx, BuildBuilding) to
// find builds a Host restart interrupted.
func (s *Store) ListBuilds(ctx context.Context, status string) ([]Build, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+buildCols+` FROM builds
WHERE (?1 = '' OR status = ?1) ORDER BY started_at, build_id`, status)
	if err != nil {
		return nil, wrap("list builds", err)
	}
	defer rows.Close()
	var out []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, wrap("list builds", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list builds", err)
	}
	return out, nil
}

// DeleteBuild removes a build row, or returns ErrNotFound.
func (s *Store) DeleteBuild(ctx context.Context, id string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, `DELETE FROM builds WHERE build_id = ?`, id)
	})
	return wrap("delete build "+id, err)
}

// execOne runs a statement that must affect exactly one row; none is
// ErrNotFound.
func execOne(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// UnusedBuilds returns the ids of the builds no program has as its current
// build and no kept release names: a replaced source's old build once its
// release is dropped, or a deleted program's.
func (s *Store) UnusedBuilds(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT build_id FROM builds
		WHERE build_id NOT IN (SELECT build_id FROM programs) AND build_id NOT IN (SELECT build_id FROM releases)
		ORDER BY build_id`)
	if err != nil {
		return nil, wrap("list unused builds", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("list unused builds", err)
		}
		ids = append(ids, id)
	}
	return ids, wrap("list unused builds", rows.Err())
}
