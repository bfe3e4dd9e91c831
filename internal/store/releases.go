package store

import (
	"context"
	"database/sql"
	"time"
)

// Release is one source a program was given: by create, by a source
// update, or by a rollback to an earlier release (Note says which). Its
// number counts up per program from 1 and is never reused.
type Release struct {
	ProgramID string
	Number    int
	BuildID   string
	CreatedAt time.Time
	CreatedBy string // the user whose request made it
	Digest    string // the source's digest (source.Digest)
	Note      string // e.g. "rollback to 3"
}

const releaseCols = `program_id, number, build_id, created_at, created_by, digest, note`

func scanRelease(sc scanner) (Release, error) {
	var r Release
	var at int64
	if err := sc.Scan(&r.ProgramID, &r.Number, &r.BuildID, &at, &r.CreatedBy, &r.Digest, &r.Note); err != nil {
		return Release{}, err
	}
	r.CreatedAt = fromNanos(at)
	return r, nil
}

// AddRelease records the program's next release (r.Number and a zero
// CreatedAt are filled in) and drops all but the newest keep releases
// (keep < 1 keeps them all). It returns the release as stored.
func (s *Store) AddRelease(ctx context.Context, r Release, keep int) (Release, error) {
	switch {
	case r.ProgramID == "" || r.BuildID == "":
		return Release{}, wrap("add release", invalid("a program and a build are required"))
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.stamp()
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE program_id = ?`, r.ProgramID).Scan(&r.Number); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO releases (`+releaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ProgramID, r.Number, r.BuildID, toNanos(r.CreatedAt), r.CreatedBy, r.Digest, r.Note); err != nil {
			return err
		}
		if keep > 0 {
			_, err := tx.ExecContext(ctx, `DELETE FROM releases WHERE program_id = ? AND number <= ?`, r.ProgramID, r.Number-keep)
			return err
		}
		return nil
	})
	if err != nil {
		return Release{}, wrap("add release", err)
	}
	return r, nil
}

// Releases lists a program's kept releases, newest first.
func (s *Store) Releases(ctx context.Context, programID string) ([]Release, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+releaseCols+` FROM releases WHERE program_id = ? ORDER BY number DESC`, programID)
	if err != nil {
		return nil, wrap("list releases", err)
	}
	defer rows.Close()
	var out []Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, wrap("list releases", err)
		}
		out = append(out, r)
	}
	return out, wrap("list releases", rows.Err())
}

// GetRelease reads one release (ErrNotFound if it is not kept).
func (s *Store) GetRelease(ctx context.Context, programID string, number int) (Release, error) {
	r, err := scanRelease(s.r.QueryRowContext(ctx, `SELECT `+releaseCols+` FROM releases WHERE program_id = ? AND number = ?`, programID, number))
	if err != nil {
		return Release{}, wrap("get release", err)
	}
	return r, nil
}
