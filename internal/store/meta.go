package store

import (
	"context"
	"database/sql"
)

// Well-known meta keys.
const (
	// MetaInstanceID is the Host instance id put on container labels.
	MetaInstanceID = "host_instance_id"
)

// EnsureMeta sets key to value unless it already has one, and returns the
// stored value: EnsureMeta(ctx, MetaInstanceID, newRandomID) creates the
// Host's instance id once and returns the same id on every later start.
func (s *Store) EnsureMeta(ctx context.Context, key, value string) (string, error) {
	if key == "" {
		return "", wrap("ensure meta", invalid("empty key"))
	}
	var out string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&out)
	})
	if err != nil {
		return "", wrap("ensure meta "+key, err)
	}
	return out, nil
}
