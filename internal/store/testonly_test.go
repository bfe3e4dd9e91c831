package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Store methods only the tests need: reads that check what the Host's
// code wrote, and the database's own consistency check.

// GetBuild returns one build, or ErrNotFound.
func (s *Store) GetBuild(ctx context.Context, id string) (Build, error) {
	b, err := scanBuild(s.r.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds WHERE build_id = ?`, id))
	if err != nil {
		return Build{}, wrap("get build "+id, err)
	}
	return b, nil
}

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

// Version reports the schema version of the open database.
func (s *Store) Version(ctx context.Context) (int, error) {
	v, err := currentVersion(ctx, s.r)
	return v, wrap("schema version", err)
}

// IntegrityCheck runs SQLite's integrity_check and foreign_key_check and
// returns an error describing the first problems found.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return fmt.Errorf("store: integrity check: %w", err)
		}
		if m != "ok" {
			msgs = append(msgs, m)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	fk, err := s.r.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("store: foreign key check: %w", err)
	}
	for fk.Next() {
		msgs = append(msgs, "foreign key violation")
		break
	}
	fk.Close()
	if len(msgs) > 0 {
		return fmt.Errorf("store: database is not consistent: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// GetToken returns one token by id, or ErrNotFound.
func (s *Store) GetToken(ctx context.Context, id string) (Token, error) {
	ts, err := s.ListTokens(ctx, "")
	if err != nil {
		return Token{}, err
	}
	for _, t := range ts {
		if t.ID == id {
			return t, nil
		}
	}
	return Token{}, wrap("get token "+id, ErrNotFound)
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }
