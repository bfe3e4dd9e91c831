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

// GetMeta returns a host metadata value, or ErrNotFound.
func (s *Store) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if err != nil {
		return "", wrap("get meta "+key, err)
	}
	return v, nil
}

// SetMeta sets a host metadata value.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	if key == "" {
		return wrap("set meta", invalid("empty key"))
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
	return wrap("set meta "+key, err)
}

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
