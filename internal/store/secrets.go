package store

import (
	"context"
	"database/sql"
	"time"
)

// Secret is the metadata of one program secret. The value is a file the
// Host keeps in the data directory; it never enters the database.
type Secret struct {
	ProgramID string
	Name      string
	UpdatedAt time.Time
}

// PutSecret records that the program's secret name was set now (insert or
// update). A missing program is ErrNotFound.
func (s *Store) PutSecret(ctx context.Context, programID, name string) (Secret, error) {
	if programID == "" || name == "" {
		return Secret{}, wrap("put secret", invalid("empty program id or secret name"))
	}
	sec := Secret{ProgramID: programID, Name: name, UpdatedAt: s.stamp()}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO secrets (program_id, name, updated_at) VALUES (?, ?, ?)
ON CONFLICT (program_id, name) DO UPDATE SET updated_at = excluded.updated_at`, programID, name, toNanos(sec.UpdatedAt))
		return err
	})
	if err != nil {
		return Secret{}, wrap("put secret "+programID+"/"+name, err)
	}
	return sec, nil
}

// ListSecrets returns a program's secrets sorted by name.
func (s *Store) ListSecrets(ctx context.Context, programID string) ([]Secret, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT program_id, name, updated_at FROM secrets
WHERE program_id = ? ORDER BY name`, programID)
	if err != nil {
		return nil, wrap("list secrets "+programID, err)
	}
	defer rows.Close()
	var out []Secret
	for rows.Next() {
		var (
			sec Secret
			at  int64
		)
		if err := rows.Scan(&sec.ProgramID, &sec.Name, &at); err != nil {
			return nil, wrap("list secrets "+programID, err)
		}
		sec.UpdatedAt = fromNanos(at)
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list secrets "+programID, err)
	}
	return out, nil
}

// DeleteSecret removes a secret's metadata, or returns ErrNotFound.
func (s *Store) DeleteSecret(ctx context.Context, programID, name string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, `DELETE FROM secrets WHERE program_id = ? AND name = ?`, programID, name)
	})
	return wrap("delete secret "+programID+"/"+name, err)
}
