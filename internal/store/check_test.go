package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestCheck: the integrity check passes on a database in use and names
// the damage when a page of an index is overwritten (as a torn write or a
// full disk could leave it).
func TestCheck(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hershy.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		mustCreate(t, s, Program{ID: fmt.Sprintf("p-%03d", i), UserID: "alice"})
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("a sound database: %v", err)
	}
	var root, pageSize int64
	if err := s.r.QueryRowContext(ctx, "SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'programs' LIMIT 1").Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // checkpoints: every page is in the file
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, pageSize), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	damaged := &Store{path: path, r: db, w: db}
	if err := damaged.Check(ctx); err == nil {
		t.Fatal("a zeroed index page passed the check")
	} else {
		t.Logf("found: %v", err)
	}
}
