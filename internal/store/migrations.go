package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations is the schema history. migrations[i] brings the database from
// version i to version i+1; each is applied in its own transaction together
// with its schema_version row. Never edit or reorder an entry that has been
// released: append a new one.
//
// Conventions: STRICT tables; times are INTEGER Unix nanoseconds (UTC);
// booleans are INTEGER 0/1; enumerated values are checked in Go (see
// validate*), so adding a value needs no table rebuild.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE programs (
	program_id       TEXT    NOT NULL PRIMARY KEY,
	user_id          TEXT    NOT NULL,
	build_id         TEXT    NOT NULL DEFAULT '',
	state            TEXT    NOT NULL,
	desired          TEXT    NOT NULL,
	image_id         TEXT    NOT NULL DEFAULT '',
	container_id     TEXT    NOT NULL DEFAULT '',
	runtime          TEXT    NOT NULL DEFAULT '',
	error_msg        TEXT    NOT NULL DEFAULT '',
	restart_policy   TEXT    NOT NULL,
	restart_count    INTEGER NOT NULL DEFAULT 0,
	next_restart_at  INTEGER,
	last_exit_code   INTEGER,
	last_oom         INTEGER NOT NULL DEFAULT 0 CHECK (last_oom IN (0, 1)),
	last_finished_at INTEGER,
	healthy_since    INTEGER,
	options          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(options)),
	effect_seq       INTEGER NOT NULL DEFAULT 0,
	start_after_stop INTEGER NOT NULL DEFAULT 0 CHECK (start_after_stop IN (0, 1)),
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX programs_created ON programs (created_at, program_id);
CREATE INDEX programs_user ON programs (user_id, created_at, program_id);
CREATE INDEX programs_state ON programs (state);
CREATE INDEX programs_image ON programs (image_id);
CREATE INDEX programs_build ON programs (build_id);

CREATE TABLE transitions (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	program_id TEXT    NOT NULL REFERENCES programs (program_id) ON DELETE CASCADE,
	from_state TEXT    NOT NULL,
	to_state   TEXT    NOT NULL,
	reason     TEXT    NOT NULL DEFAULT '',
	at         INTEGER NOT NULL
) STRICT;
CREATE INDEX transitions_program ON transitions (program_id, id);

CREATE TABLE builds (
	build_id    TEXT    NOT NULL PRIMARY KEY,
	image_id    TEXT    NOT NULL DEFAULT '',
	status      TEXT    NOT NULL,
	error       TEXT    NOT NULL DEFAULT '',
	log_path    TEXT    NOT NULL DEFAULT '',
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	duration_ns INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX builds_started ON builds (started_at, build_id);

CREATE TABLE tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	hash       TEXT    NOT NULL UNIQUE,
	is_admin   INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
) STRICT;
CREATE INDEX tokens_user ON tokens (user_id, created_at, id);

CREATE TABLE secrets (
	program_id TEXT    NOT NULL REFERENCES programs (program_id) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (program_id, name)
) STRICT;

CREATE TABLE meta (
	key   TEXT NOT NULL PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
`,
	// 2: programs' resource history (package stats): one row per program,
	// resolution and time; the key's order serves both a program's reads
	// and the pruning of each program's oldest rows.
	`
CREATE TABLE program_stats (
	program_id         TEXT    NOT NULL REFERENCES programs (program_id) ON DELETE CASCADE,
	resolution         TEXT    NOT NULL,
	at                 INTEGER NOT NULL,
	cpu_percent        REAL    NOT NULL,
	memory_bytes       INTEGER NOT NULL,
	memory_limit_bytes INTEGER NOT NULL,
	pids               INTEGER NOT NULL,
	net_rx_bytes       INTEGER NOT NULL,
	net_tx_bytes       INTEGER NOT NULL,
	state_bytes_used   INTEGER NOT NULL,
	state_bytes_limit  INTEGER NOT NULL,
	restarts           INTEGER NOT NULL,
	PRIMARY KEY (program_id, resolution, at)
) STRICT, WITHOUT ROWID;
`,
	// 3: releases: each source a program was given (and each rollback),
	// numbered per program. A kept release keeps its build's image.
	`
CREATE TABLE releases (
	program_id TEXT    NOT NULL REFERENCES programs (program_id) ON DELETE CASCADE,
	number     INTEGER NOT NULL CHECK (number > 0),
	build_id   TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT    NOT NULL,
	digest     TEXT    NOT NULL,
	note       TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (program_id, number)
) STRICT, WITHOUT ROWID;
CREATE INDEX releases_build ON releases (build_id);
`,
	// 4: webhooks (alerts of programs' events, per user) and their
	// delivery log. A webhook's secret signs its deliveries, so it is kept
	// as given, not hashed.
	`
CREATE TABLE webhooks (
	webhook_id          TEXT    NOT NULL PRIMARY KEY,
	user_id             TEXT    NOT NULL,
	program_id          TEXT    NOT NULL DEFAULT '',
	url                 TEXT    NOT NULL,
	secret              TEXT    NOT NULL,
	events              TEXT    NOT NULL DEFAULT '',
	crash_loop_crashes  INTEGER NOT NULL,
	crash_loop_window_s INTEGER NOT NULL,
	created_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX webhooks_user ON webhooks (user_id, created_at);

CREATE TABLE webhook_deliveries (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	webhook_id  TEXT    NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
	event_id    TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	program_id  TEXT    NOT NULL DEFAULT '',
	attempt     INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	status      INTEGER NOT NULL DEFAULT 0,
	error       TEXT    NOT NULL DEFAULT '',
	took_ns     INTEGER NOT NULL DEFAULT 0,
	outcome     TEXT    NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);
`,
}

// migrate applies pending migrations, one transaction each. The version is
// read inside each IMMEDIATE transaction, so two processes opening the same
// file at once cannot apply a migration twice.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at INTEGER NOT NULL
) STRICT`); err != nil {
		return err
	}
	cur, err := currentVersion(ctx, s.w)
	if err != nil {
		return err
	}
	if cur > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this program's (%d); refusing to use it", cur, len(migrations))
	}
	for i, m := range migrations {
		v := i + 1
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			cur, err := currentVersion(ctx, tx)
			if err != nil {
				return err
			}
			if cur >= v {
				return nil // applied (possibly by another process meanwhile)
			}
			if cur != v-1 {
				return fmt.Errorf("schema version %d, cannot apply migration %d", cur, v)
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`, v, toNanos(s.stamp()))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func currentVersion(ctx context.Context, q queryRower) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, err
}
