// Package store is the Host's persistence layer: an embedded SQLite database
// (modernc.org/sqlite, pure Go) in the data directory holding programs, their
// state-transition history, builds, API tokens, secret metadata and a small
// key-value table of host metadata.
//
// # Concurrency and durability
//
// The database runs in WAL mode with foreign keys on and synchronous=FULL.
// All writes go through one pooled connection (database/sql with
// MaxOpenConns(1)) whose transactions begin IMMEDIATE, so writers inside one
// process queue in Go instead of racing for SQLite's lock: concurrent callers
// never see SQLITE_BUSY. Reads use a separate pool of query_only connections
// and, thanks to WAL, run concurrently with the writer. A busy_timeout still
// covers contention from another process opening the same file.
//
// Every method that writes more than one row does so in one transaction; in
// particular [Store.SaveTransition] updates a program and appends its
// transition atomically, and a process killed at any point leaves either the
// whole change or none of it.
//
// # Errors
//
// Missing rows are reported as an error wrapping [ErrNotFound], duplicates as
// one wrapping [ErrConflict] and malformed input as one wrapping
// [ErrInvalid]. Test them with errors.Is.
//
// # Times
//
// Times are stored as Unix nanoseconds (UTC) and returned in UTC. Methods
// that write a row return the row as stored, so it compares equal (with
// reflect.DeepEqual) to what a later Get returns.
//
// Validation here is deliberately minimal (the Host validates user input):
// identifiers must be non-empty and enumerated fields must hold one of their
// documented values. SQL is never assembled from values: parameters only.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors returned (wrapped) by the store.
var (
	// ErrNotFound: the row does not exist (or, for writes that reference a
	// program, the program does not exist).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a row with the same key already exists.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid: an argument is malformed (empty id, unknown enum value).
	ErrInvalid = errors.New("store: invalid argument")
)

// busyTimeout bounds how long a connection waits for a lock held by another
// connection (in practice: another process on the same file, or a reader
// during WAL recovery).
const busyTimeout = 10 * time.Second

// Store is a handle on the Host database. It is safe for concurrent use.
type Store struct {
	path string
	w    *sql.DB // the single writer connection
	r    *sql.DB // read-only connections

	// stmts holds prepared statements of the hot reads (query text ->
	// *sql.Stmt on r): parsing the SQL again costs more than running it.
	stmts sync.Map

	now func() time.Time

	// hookAfterProgramUpdate, when set (tests only), runs inside
	// SaveTransition between the program update and the transition insert;
	// an error aborts the transaction.
	hookAfterProgramUpdate func() error
}

type options struct {
	synchronous string // FULL or NORMAL
	readers     int
}

// Open opens (creating if needed) the database file at path and applies any
// pending migrations. The parent directory must exist. A new file is created
// with mode 0600.
func Open(path string) (*Store, error) {
	return open(path, options{synchronous: "FULL", readers: 4})
}

func open(path string, o options) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty database path", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("store: data directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("store: %s is not a directory", filepath.Dir(abs))
	}
	// Create the file ourselves so it is private; SQLite gives the -wal and
	// -shm files the same permissions as the database file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()

	bt := fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {bt, "journal_mode(WAL)", "foreign_keys(1)", "synchronous(" + o.synchronous + ")"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{path: abs, w: w, now: time.Now}
	ctx := context.Background()
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if !strings.EqualFold(mode, "wal") {
		w.Close()
		return nil, fmt.Errorf("store: open %s: journal_mode is %q, want wal (does the filesystem support shared memory?)", abs, mode)
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", abs, err)
	}

	r, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {bt, "foreign_keys(1)", "query_only(1)"},
	}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if o.readers < 1 {
		o.readers = 1
	}
	r.SetMaxOpenConns(o.readers)
	r.SetMaxIdleConns(o.readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	s.r = r
	return s, nil
}

// dsn builds a file: URI for the driver; the path is escaped, so any file
// name works.
func dsn(abs string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// readRow runs a read-only query expected to return at most one row,
// through a statement prepared once per Store (database/sql prepares it
// again on each reader connection that first runs it).
func (s *Store) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt).QueryRowContext(ctx, args...)
	}
	st, err := s.r.PrepareContext(ctx, query)
	if err != nil {
		return s.r.QueryRowContext(ctx, query, args...) // reports the error through Scan
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		st = prev.(*sql.Stmt)
	}
	return st.QueryRowContext(ctx, args...)
}

// Close closes the database. The last connection to close checkpoints the WAL.
func (s *Store) Close() error {
	var errs []error
	s.stmts.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		s.stmts.Delete(k)
		return true
	})
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// writeTx runs fn in an IMMEDIATE transaction on the writer connection. fn
// must use tx only: calling another Store method from fn would wait forever
// for the single writer connection.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// readTx runs fn in a read transaction (one consistent snapshot).
func (s *Store) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(tx)
}

// wrap turns driver errors into the package's sentinel errors, keeping the
// original in the chain.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("store: %s: %w: %w", op, ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("store: %s: %w (referenced row missing): %w", op, ErrNotFound, err)
		case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_CONSTRAINT_DATATYPE:
			return fmt.Errorf("store: %s: %w: %w", op, ErrInvalid, err)
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Time encoding: Unix nanoseconds, NULL for a nil or zero pointer.

func toNanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func toNullNanos(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNullNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

// toNullTime stores a time, the zero time as NULL.
func toNullTime(t time.Time) any { return toNullNanos(&t) }

// fromNullTime reads a time, NULL as the zero time.
func fromNullTime(n sql.NullInt64) time.Time {
	if t := fromNullNanos(n); t != nil {
		return *t
	}
	return time.Time{}
}

// stamp is the current time, truncated to what the database keeps.
func (s *Store) stamp() time.Time { return fromNanos(s.now().UnixNano()) }

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics on failure)
	return hex.EncodeToString(b[:])
}

// limitArg maps "no limit" (<= 0) to SQLite's LIMIT -1.
func limitArg(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// Check runs SQLite's integrity check over the whole database: nil when it
// finds nothing wrong, else an error listing (the first of) what it found.
// The fault tests run it after every crash and full disk they cause.
func (s *Store) Check(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "PRAGMA integrity_check(20)")
	if err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("store: integrity check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("store: integrity check: %s", strings.Join(problems, "; "))
	}
	return nil
}
