package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "hershy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// fakeClock returns a clock that advances by step on every call.
func fakeClock(start time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func mustCreate(t testing.TB, s *Store, p Program) Program {
	t.Helper()
	out, err := s.CreateProgram(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenSettings(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("writer PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
	var qo string
	if err := s.r.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader query_only = %q, %v", qo, err)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %o, want 600", perm)
	}
	if v, err := s.Version(ctx); err != nil || v != SchemaVersion() {
		t.Errorf("Version = %d, %v; want %d", v, err, SchemaVersion())
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
	}{
		{"empty", ""},
		{"missing dir", filepath.Join(dir, "nope", "x.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Open(tc.path); err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestPathWithURIChars(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%chars")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "h.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetMeta(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
}

func TestMigrationsIdempotentAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "h.db")
	s1, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	p := mustCreate(t, s1, Program{ID: "p1", UserID: "u", Options: Options{Env: map[string]string{"A": "1"}}})
	if _, err := s1.SaveTransition(ctx, p, lifecycle.Created, lifecycle.Building, "start"); err != nil {
		t.Fatal(err)
	}
	if err := s1.SetMeta(ctx, MetaInstanceID, "inst-1"); err != nil {
		t.Fatal(err)
	}
	// A second handle while the first is open: migrations are already applied.
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version`).Scan(&n); err != nil || n != len(migrations) {
			t.Errorf("schema_version rows = %d, %v; want %d", n, err, len(migrations))
		}
		got, err := s.GetProgram(ctx, "p1")
		if err != nil || got.State != lifecycle.Building || got.Options.Env["A"] != "1" {
			t.Errorf("after reopen: %+v, %v", got, err)
		}
		if tr, err := s.ListTransitions(ctx, "p1", 0); err != nil || len(tr) != 1 {
			t.Errorf("transitions after reopen: %v, %v", tr, err)
		}
		if v, err := s.GetMeta(ctx, MetaInstanceID); err != nil || v != "inst-1" {
			t.Errorf("meta after reopen: %q, %v", v, err)
		}
		s.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
}

func fullProgram() Program {
	return Program{
		ID: "alice-abc-1", UserID: "alice", Runtime: "runsc",
		Program: lifecycle.Program{
			BuildID: "abc", State: lifecycle.Ready, Desired: lifecycle.DesiredRunning,
			ImageID: "sha256:img", ContainerID: "cont", ErrorMsg: "previous error",
			Policy: lifecycle.RestartAlways, RestartCount: 3, NextRestartAt: t0.Add(time.Minute),
			LastExitCode: ptr(137), LastOOM: true, LastExitAt: t0.Add(time.Second),
			HealthySince: t0.Add(2 * time.Second), Seq: 42,
		},
		Options:   Options{Network: true, MemoryBytes: 256 << 20, CPUs: 0.5, Env: map[string]string{"K": "v", "Z": ""}},
		CreatedAt: t0.Add(123 * time.Nanosecond),
	}
}

func TestProgramCRUD(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.now = fakeClock(t0, time.Millisecond)

	// Create: defaults and a full row.
	def := mustCreate(t, s, Program{ID: "bob-x-1", UserID: "bob"})
	if def.State != lifecycle.Created || def.Desired != lifecycle.DesiredStopped || def.Policy != lifecycle.RestartOnFailure ||
		def.CreatedAt.IsZero() || !def.UpdatedAt.Equal(def.CreatedAt) || def.LastExitCode != nil || def.Options.Env != nil {
		t.Errorf("defaults: %+v", def)
	}
	full := fullProgram()
	created := mustCreate(t, s, full)
	want := full
	want.UpdatedAt = want.CreatedAt
	if !reflect.DeepEqual(created, want) {
		t.Errorf("created\n got %+v\nwant %+v", created, want)
	}
	got, err := s.GetProgram(ctx, full.ID)
	if err != nil || !reflect.DeepEqual(got, created) {
		t.Errorf("get\n got %+v, %v\nwant %+v", got, err, created)
	}

	// Update: every field, pointers cleared, UpdatedAt stamped.
	upd := got
	upd.State, upd.Desired, upd.ContainerID, upd.ErrorMsg = lifecycle.Stopped, lifecycle.DesiredStopped, "", ""
	upd.NextRestartAt, upd.LastExitCode, upd.HealthySince = time.Time{}, ptr(0), time.Time{}
	upd.LastOOM, upd.Policy, upd.Runtime, upd.Seq = false, lifecycle.RestartNever, "runc", 43
	upd.Options = Options{}
	updated, err := s.UpdateProgram(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	if !updated.UpdatedAt.After(got.UpdatedAt) || !updated.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("timestamps after update: created %v updated %v (before %v)", updated.CreatedAt, updated.UpdatedAt, got.UpdatedAt)
	}
	upd.UpdatedAt = updated.UpdatedAt
	if !reflect.DeepEqual(updated, upd) {
		t.Errorf("updated\n got %+v\nwant %+v", updated, upd)
	}
	if got, _ := s.GetProgram(ctx, full.ID); !reflect.DeepEqual(got, updated) {
		t.Errorf("get after update\n got %+v\nwant %+v", got, updated)
	}

	// Errors.
	errCases := []struct {
		name string
		fn   func() error
		want error
	}{
		{"duplicate create", func() error { _, err := s.CreateProgram(ctx, Program{ID: "bob-x-1", UserID: "bob"}); return err }, ErrConflict},
		{"get missing", func() error { _, err := s.GetProgram(ctx, "nope"); return err }, ErrNotFound},
		{"update missing", func() error {
			_, err := s.UpdateProgram(ctx, Program{ID: "nope", UserID: "u", Program: lifecycle.Program{State: lifecycle.Ready, Desired: lifecycle.DesiredRunning, Policy: lifecycle.RestartNever}})
			return err
		}, ErrNotFound},
		{"delete missing", func() error { return s.DeleteProgram(ctx, "nope") }, ErrNotFound},
		{"empty id", func() error { _, err := s.CreateProgram(ctx, Program{UserID: "u"}); return err }, ErrInvalid},
		{"empty user", func() error { _, err := s.CreateProgram(ctx, Program{ID: "x"}); return err }, ErrInvalid},
		{"bad state", func() error {
			_, err := s.CreateProgram(ctx, Program{ID: "x", UserID: "u", Program: lifecycle.Program{State: "Running"}})
			return err
		}, ErrInvalid},
		{"bad desired", func() error {
			_, err := s.CreateProgram(ctx, Program{ID: "x", UserID: "u", Program: lifecycle.Program{Desired: "up"}})
			return err
		}, ErrInvalid},
		{"bad runtime", func() error {
			_, err := s.CreateProgram(ctx, Program{ID: "x", UserID: "u", Runtime: "kata"})
			return err
		}, ErrInvalid},
		{"bad policy", func() error {
			_, err := s.CreateProgram(ctx, Program{ID: "x", UserID: "u", Program: lifecycle.Program{Policy: "sometimes"}})
			return err
		}, ErrInvalid},
		{"bad update", func() error { p := def; p.State = "nope"; _, err := s.UpdateProgram(ctx, p); return err }, ErrInvalid},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.fn(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := s.GetProgram(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an invalid create wrote a row: %v", err)
	}

	// Delete.
	if err := s.DeleteProgram(ctx, def.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetProgram(ctx, def.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestUpdatedAtStrictlyIncreases(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.now = func() time.Time { return t0 } // frozen clock
	p := mustCreate(t, s, Program{ID: "p", UserID: "u"})
	prev := p.UpdatedAt
	for i := 0; i < 5; i++ {
		var err error
		if p, err = s.UpdateProgram(ctx, p); err != nil {
			t.Fatal(err)
		}
		if !p.UpdatedAt.After(prev) {
			t.Fatalf("UpdatedAt %v not after %v", p.UpdatedAt, prev)
		}
		prev = p.UpdatedAt
	}
}

func ids(ps []Program) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestListPrograms(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// Insert out of order; b-2 and a-2 share a creation time (tie broken by id).
	for _, p := range []Program{
		{ID: "b-2", UserID: "bob", Program: lifecycle.Program{State: lifecycle.Ready}, CreatedAt: t0.Add(2 * time.Second)},
		{ID: "a-1", UserID: "alice", Program: lifecycle.Program{State: lifecycle.Created}, CreatedAt: t0.Add(1 * time.Second)},
		{ID: "a-3", UserID: "alice", Program: lifecycle.Program{State: lifecycle.Ready}, CreatedAt: t0.Add(3 * time.Second)},
		{ID: "a-2", UserID: "alice", Program: lifecycle.Program{State: lifecycle.Error}, CreatedAt: t0.Add(2 * time.Second)},
		{ID: "b-4", UserID: "bob", Program: lifecycle.Program{State: lifecycle.Stopped}, CreatedAt: t0.Add(4 * time.Second)},
		{ID: "a-5", UserID: "alice", Program: lifecycle.Program{State: lifecycle.Ready}, CreatedAt: t0.Add(5 * time.Second)},
	} {
		mustCreate(t, s, p)
	}
	for _, tc := range []struct {
		name  string
		f     ProgramFilter
		want  []string
		total int
	}{
		{"all", ProgramFilter{}, []string{"a-1", "a-2", "b-2", "a-3", "b-4", "a-5"}, 6},
		{"first page", ProgramFilter{Limit: 2}, []string{"a-1", "a-2"}, 6},
		{"second page", ProgramFilter{Limit: 2, Offset: 2}, []string{"b-2", "a-3"}, 6},
		{"last partial page", ProgramFilter{Limit: 4, Offset: 4}, []string{"b-4", "a-5"}, 6},
		{"past the end", ProgramFilter{Limit: 2, Offset: 10}, []string{}, 6},
		{"offset only", ProgramFilter{Offset: 5}, []string{"a-5"}, 6},
		{"negative offset", ProgramFilter{Offset: -3, Limit: 1}, []string{"a-1"}, 6},
		{"user", ProgramFilter{UserID: "alice"}, []string{"a-1", "a-2", "a-3", "a-5"}, 4},
		{"state", ProgramFilter{State: lifecycle.Ready}, []string{"b-2", "a-3", "a-5"}, 3},
		{"user and state", ProgramFilter{UserID: "alice", State: lifecycle.Ready}, []string{"a-3", "a-5"}, 2},
		{"user and state paged", ProgramFilter{UserID: "alice", State: lifecycle.Ready, Limit: 1, Offset: 1}, []string{"a-5"}, 2},
		{"no match", ProgramFilter{UserID: "carol"}, []string{}, 0},
		{"injection attempt is a value", ProgramFilter{UserID: "' OR 1=1 --"}, []string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := s.ListPrograms(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tc.want) || total != tc.total {
				t.Errorf("got %v total %d, want %v total %d", ids(got), total, tc.want, tc.total)
			}
		})
	}
}

func TestSaveTransition(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.now = fakeClock(t0, time.Millisecond)
	p := mustCreate(t, s, Program{ID: "p", UserID: "u"})

	p.Desired, p.Seq = lifecycle.DesiredRunning, 1
	saved, err := s.SaveTransition(ctx, p, lifecycle.Created, lifecycle.Building, "user start")
	if err != nil {
		t.Fatal(err)
	}
	if saved.State != lifecycle.Building || saved.Desired != lifecycle.DesiredRunning || saved.Seq != 1 {
		t.Errorf("saved %+v", saved)
	}
	tr, err := s.ListTransitions(ctx, "p", 0)
	if err != nil || len(tr) != 1 {
		t.Fatalf("transitions %v, %v", tr, err)
	}
	if want := (Transition{ID: tr[0].ID, ProgramID: "p", From: lifecycle.Created, To: lifecycle.Building, Reason: "user start", At: saved.UpdatedAt}); tr[0] != want {
		t.Errorf("transition %+v, want %+v", tr[0], want)
	}

	// A failure between the program update and the transition insert
	// rolls both back.
	boom := errors.New("boom")
	s.hookAfterProgramUpdate = func() error { return boom }
	next := saved
	next.ImageID, next.Seq = "img", 2
	if _, err := s.SaveTransition(ctx, next, lifecycle.Building, lifecycle.Starting, "built"); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	s.hookAfterProgramUpdate = nil
	if got, _ := s.GetProgram(ctx, "p"); !reflect.DeepEqual(got, saved) {
		t.Errorf("program changed by a failed SaveTransition:\n got %+v\nwant %+v", got, saved)
	}
	if tr, _ := s.ListTransitions(ctx, "p", 0); len(tr) != 1 {
		t.Errorf("failed SaveTransition left %d transitions", len(tr))
	}

	// A missing program (the foreign key) writes nothing.
	ghost := saved
	ghost.ID = "ghost"
	if _, err := s.SaveTransition(ctx, ghost, lifecycle.Created, lifecycle.Building, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing program: %v", err)
	}
	// A cancelled context writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.SaveTransition(cctx, next, lifecycle.Building, lifecycle.Starting, "built"); err == nil {
		t.Error("SaveTransition with a cancelled context succeeded")
	}
	// An unknown state writes nothing.
	if _, err := s.SaveTransition(ctx, next, lifecycle.Building, "Flying", "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown to-state: %v", err)
	}
	if _, err := s.SaveTransition(ctx, next, "Flying", lifecycle.Starting, "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown from-state: %v", err)
	}
	var n int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM transitions`).Scan(&n); err != nil || n != 1 {
		t.Errorf("transitions in the table: %d, %v", n, err)
	}
	if got, _ := s.GetProgram(ctx, "p"); !reflect.DeepEqual(got, saved) {
		t.Errorf("program changed by failed SaveTransitions")
	}

	// The next real transition works.
	if _, err := s.SaveTransition(ctx, next, lifecycle.Building, lifecycle.Starting, "built"); err != nil {
		t.Fatal(err)
	}
}

func TestTransitions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.now = fakeClock(t0, time.Second)
	mustCreate(t, s, Program{ID: "p", UserID: "u"})
	mustCreate(t, s, Program{ID: "q", UserID: "u"})
	states := []lifecycle.State{lifecycle.Created, lifecycle.Building, lifecycle.Starting, lifecycle.Ready, lifecycle.Stopping, lifecycle.Stopped}
	for i := 1; i < len(states); i++ {
		for _, id := range []string{"p", "q"} {
			p, err := s.GetProgram(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.SaveTransition(ctx, p, states[i-1], states[i], fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		limit int
		want  []string // reasons
	}{
		{0, []string{"1", "2", "3", "4", "5"}},
		{-1, []string{"1", "2", "3", "4", "5"}},
		{2, []string{"4", "5"}},
		{10, []string{"1", "2", "3", "4", "5"}},
	} {
		tr, err := s.ListTransitions(ctx, "p", tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, x := range tr {
			got = append(got, x.Reason)
			if x.ProgramID != "p" || (i > 0 && !x.At.After(tr[i-1].At)) {
				t.Errorf("limit %d: bad transition %+v", tc.limit, x)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("limit %d: %v, want %v", tc.limit, got, tc.want)
		}
	}
	if tr, err := s.ListTransitions(ctx, "ghost", 0); err != nil || len(tr) != 0 {
		t.Errorf("missing program: %v, %v", tr, err)
	}
}

func TestUserHasBuild(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreate(t, s, Program{ID: "a", UserID: "ann", Program: lifecycle.Program{BuildID: "b1"}})
	mustCreate(t, s, Program{ID: "b", UserID: "ann", Program: lifecycle.Program{BuildID: "b2"}})
	mustCreate(t, s, Program{ID: "c", UserID: "bob", Program: lifecycle.Program{BuildID: "b3"}})
	for _, tc := range []struct {
		user, build string
		want        bool
	}{
		{"ann", "b1", true}, {"ann", "b2", true}, {"bob", "b3", true},
		{"ann", "b3", false}, {"bob", "b1", false}, {"carl", "b1", false},
		{"ann", "", false}, {"", "b1", false},
	} {
		if got, err := s.UserHasBuild(ctx, tc.user, tc.build); err != nil || got != tc.want {
			t.Errorf("UserHasBuild(%q, %q) = %v, %v; want %v", tc.user, tc.build, got, err, tc.want)
		}
	}
	// A program's current build counts, not its earlier ones.
	p, _ := s.GetProgram(ctx, "a")
	p.BuildID = "b4"
	if _, err := s.UpdateProgram(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserHasBuild(ctx, "ann", "b1"); got {
		t.Error("an earlier build still counts after the source changed")
	}
	if err := s.DeleteProgram(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserHasBuild(ctx, "ann", "b2"); got {
		t.Error("the build of a deleted program still counts")
	}
}

func TestCascadeDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := mustCreate(t, s, Program{ID: "a", UserID: "u", Program: lifecycle.Program{BuildID: "b1", ImageID: "img1"}})
	mustCreate(t, s, Program{ID: "b", UserID: "u", Program: lifecycle.Program{BuildID: "b1", ImageID: "img1"}})
	mustCreate(t, s, Program{ID: "c", UserID: "u", Program: lifecycle.Program{BuildID: "b2", ImageID: "img2"}})
	for _, b := range []Build{{ID: "b1", ImageID: "img1", Status: BuildOK}, {ID: "b2", ImageID: "img2", Status: BuildOK}} {
		if _, err := s.UpsertBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		p, _ := s.GetProgram(ctx, id)
		if _, err := s.SaveTransition(ctx, p, lifecycle.Created, lifecycle.Building, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutSecret(ctx, id, "KEY"); err != nil {
			t.Fatal(err)
		}
	}
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.r.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	if err := s.DeleteProgram(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT COUNT(*) FROM transitions WHERE program_id = 'a'`); n != 0 {
		t.Errorf("%d transitions of a deleted program", n)
	}
	if n := count(`SELECT COUNT(*) FROM secrets WHERE program_id = 'a'`); n != 0 {
		t.Errorf("%d secrets of a deleted program", n)
	}
	if _, err := s.GetBuild(ctx, "b1"); err != nil {
		t.Errorf("a build still used by another program was deleted: %v", err)
	}
	if n := count(`SELECT COUNT(*) FROM programs WHERE image_id = 'img1'`); n != 1 {
		t.Errorf("img1 users after delete: %d", n)
	}
	if n := count(`SELECT COUNT(*) FROM transitions`); n != 2 {
		t.Errorf("other programs' transitions: %d, want 2", n)
	}

	if err := s.DeleteProgram(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	// The build record stays until the Host has removed its image too
	// (UnusedBuilds finds it).
	if _, err := s.GetBuild(ctx, "b1"); err != nil {
		t.Errorf("the build of a deleted program: %v", err)
	}
	if _, err := s.GetBuild(ctx, "b2"); err != nil {
		t.Errorf("another program's build: %v", err)
	}
	if secs, _ := s.ListSecrets(ctx, "c"); len(secs) != 1 {
		t.Errorf("secrets of c: %v", secs)
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}

func TestBuilds(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.now = fakeClock(t0, time.Second)

	b1, err := s.UpsertBuild(ctx, Build{ID: "b1", Status: BuildBuilding, LogPath: "/data/builds/b1.log"})
	if err != nil {
		t.Fatal(err)
	}
	if b1.StartedAt.IsZero() || b1.FinishedAt != nil || b1.Duration != 0 {
		t.Errorf("new build %+v", b1)
	}
	done := b1
	done.Status, done.ImageID, done.FinishedAt = BuildOK, "sha256:x", ptr(b1.StartedAt.Add(1500*time.Millisecond))
	b1ok, err := s.UpsertBuild(ctx, done)
	if err != nil {
		t.Fatal(err)
	}
	if b1ok.Duration != 1500*time.Millisecond {
		t.Errorf("computed duration %v", b1ok.Duration)
	}
	if got, err := s.GetBuild(ctx, "b1"); err != nil || !reflect.DeepEqual(got, b1ok) {
		t.Errorf("get build\n got %+v, %v\nwant %+v", got, err, b1ok)
	}
	b2, err := s.UpsertBuild(ctx, Build{ID: "b2", Status: BuildFailed, Error: "exit 1", StartedAt: t0.Add(time.Hour), FinishedAt: ptr(t0.Add(time.Hour + time.Second)), Duration: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if b2.Duration != 7*time.Second {
		t.Errorf("explicit duration overwritten: %v", b2.Duration)
	}
	b3, err := s.UpsertBuild(ctx, Build{ID: "b3", Status: BuildBuilding, StartedAt: t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status string
		want   []Build
	}{
		{"", []Build{b1ok, b2, b3}},
		{BuildBuilding, []Build{b3}},
		{BuildOK, []Build{b1ok}},
		{BuildFailed, []Build{b2}},
	} {
		got, err := s.ListBuilds(ctx, tc.status)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListBuilds(%q) = %+v, %v; want %+v", tc.status, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"empty id", func() error { _, err := s.UpsertBuild(ctx, Build{Status: BuildOK}); return err }(), ErrInvalid},
		{"bad status", func() error { _, err := s.UpsertBuild(ctx, Build{ID: "x", Status: "done"}); return err }(), ErrInvalid},
		{"get missing", func() error { _, err := s.GetBuild(ctx, "nope"); return err }(), ErrNotFound},
		{"delete missing", s.DeleteBuild(ctx, "nope"), ErrNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if err := s.DeleteBuild(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBuild(ctx, "b2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func hashOf(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.now = fakeClock(t0, time.Second)

	admin, err := s.CreateToken(ctx, Token{UserID: "admin", Hash: hashOf('a'), IsAdmin: true})
	if err != nil {
		t.Fatal(err)
	}
	if admin.ID == "" || admin.CreatedAt.IsZero() || admin.RevokedAt != nil || !admin.IsAdmin {
		t.Errorf("admin token %+v", admin)
	}
	alice, err := s.CreateToken(ctx, Token{ID: "tok-alice", UserID: "alice", Hash: hashOf('b')})
	if err != nil {
		t.Fatal(err)
	}
	alice2, err := s.CreateToken(ctx, Token{ID: "tok-alice-2", UserID: "alice", Hash: hashOf('c')})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		tok  Token
		want error
	}{
		{"duplicate hash", Token{UserID: "bob", Hash: hashOf('b')}, ErrConflict},
		{"duplicate id", Token{ID: "tok-alice", UserID: "bob", Hash: hashOf('d')}, ErrConflict},
		{"empty user", Token{Hash: hashOf('e')}, ErrInvalid},
		{"raw secret instead of hash", Token{UserID: "bob", Hash: "hsy_secret"}, ErrInvalid},
		{"upper-case hash", Token{UserID: "bob", Hash: hashOf('A')}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.CreateToken(ctx, tc.tok); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}

	if got, err := s.TokenByHash(ctx, hashOf('b')); err != nil || !reflect.DeepEqual(got, alice) {
		t.Errorf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, hashOf('f')); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	if all, err := s.ListTokens(ctx, ""); err != nil || !reflect.DeepEqual(all, []Token{admin, alice, alice2}) {
		t.Errorf("ListTokens = %+v, %v", all, err)
	}
	if mine, err := s.ListTokens(ctx, "alice"); err != nil || !reflect.DeepEqual(mine, []Token{alice, alice2}) {
		t.Errorf("ListTokens(alice) = %+v, %v", mine, err)
	}

	if err := s.RevokeToken(ctx, "tok-alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, hashOf('b')); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked token still valid: %v", err)
	}
	rev, err := s.GetToken(ctx, "tok-alice")
	if err != nil || rev.RevokedAt == nil {
		t.Fatalf("revoked token: %+v, %v", rev, err)
	}
	if err := s.RevokeToken(ctx, "tok-alice"); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	if again, _ := s.GetToken(ctx, "tok-alice"); !again.RevokedAt.Equal(*rev.RevokedAt) {
		t.Errorf("second revoke moved the revocation time: %v -> %v", rev.RevokedAt, again.RevokedAt)
	}
	if _, err := s.TokenByHash(ctx, hashOf('c')); err != nil {
		t.Errorf("other token affected by revoke: %v", err)
	}
	if err := s.RevokeToken(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke missing: %v", err)
	}
	if _, err := s.GetToken(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.now = fakeClock(t0, time.Second)
	mustCreate(t, s, Program{ID: "p", UserID: "u"})

	if _, err := s.PutSecret(ctx, "ghost", "K"); !errors.Is(err, ErrNotFound) {
		t.Errorf("secret of a missing program: %v", err)
	}
	if _, err := s.PutSecret(ctx, "p", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty name: %v", err)
	}
	first, err := s.PutSecret(ctx, "p", "EXCHANGE_KEY")
	if err != nil {
		t.Fatal(err)
	}
	api, err := s.PutSecret(ctx, "p", "API_SECRET")
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.PutSecret(ctx, "p", "EXCHANGE_KEY")
	if err != nil {
		t.Fatal(err)
	}
	if !second.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("update time not advanced: %v -> %v", first.UpdatedAt, second.UpdatedAt)
	}
	if got, err := s.ListSecrets(ctx, "p"); err != nil || !reflect.DeepEqual(got, []Secret{api, second}) {
		t.Errorf("ListSecrets = %+v, %v", got, err)
	}
	if err := s.DeleteSecret(ctx, "p", "API_SECRET"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(ctx, "p", "API_SECRET"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete missing: %v", err)
	}
	if got, _ := s.ListSecrets(ctx, "p"); !reflect.DeepEqual(got, []Secret{second}) {
		t.Errorf("after delete: %+v", got)
	}
	if got, err := s.ListSecrets(ctx, "ghost"); err != nil || len(got) != 0 {
		t.Errorf("secrets of a missing program: %v, %v", got, err)
	}
}

func TestMeta(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.GetMeta(ctx, MetaInstanceID); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}
	if v, err := s.EnsureMeta(ctx, MetaInstanceID, "first"); err != nil || v != "first" {
		t.Errorf("EnsureMeta = %q, %v", v, err)
	}
	if v, err := s.EnsureMeta(ctx, MetaInstanceID, "second"); err != nil || v != "first" {
		t.Errorf("EnsureMeta kept = %q, %v", v, err)
	}
	if err := s.SetMeta(ctx, MetaInstanceID, "third"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetMeta(ctx, MetaInstanceID); err != nil || v != "third" {
		t.Errorf("GetMeta = %q, %v", v, err)
	}
	if err := s.SetMeta(ctx, "", "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
}

// TestConcurrentWriters hammers the store from 16 goroutines (and readers
// alongside); no call may fail, SQLITE_BUSY included.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const workers, perWorker = 16, 6
	var wg sync.WaitGroup
	errc := make(chan error, workers*2)
	stop := make(chan struct{})
	for r := 0; r < 4; r++ { // readers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := s.ListPrograms(ctx, ProgramFilter{Limit: 20}); err != nil {
					errc <- err
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	var writers sync.WaitGroup
	for w := 0; w < workers; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			err := func() error {
				for i := 0; i < perWorker; i++ {
					p, err := s.CreateProgram(ctx, Program{ID: fmt.Sprintf("w%d-%d", w, i), UserID: fmt.Sprintf("u%d", w%3)})
					if err != nil {
						return err
					}
					p.Seq = 1
					if _, err := s.SaveTransition(ctx, p, lifecycle.Created, lifecycle.Building, "start"); err != nil {
						return err
					}
					if _, err := s.PutSecret(ctx, p.ID, "K"); err != nil {
						return err
					}
					if err := s.SetMeta(ctx, fmt.Sprintf("w%d", w), fmt.Sprint(i)); err != nil {
						return err
					}
					if _, err := s.UpsertBuild(ctx, Build{ID: fmt.Sprintf("b%d", i), Status: BuildOK}); err != nil {
						return err
					}
				}
				return nil
			}()
			if err != nil {
				errc <- err
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	_, total, err := s.ListPrograms(ctx, ProgramFilter{State: lifecycle.Building})
	if err != nil || total != workers*perWorker {
		t.Errorf("programs in Building: %d, %v; want %d", total, err, workers*perWorker)
	}
	var n int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM transitions`).Scan(&n); err != nil || n != workers*perWorker {
		t.Errorf("transitions: %d, %v", n, err)
	}
}

// TestTwoHandles: two Stores on one file (as two processes would be) write
// concurrently; busy_timeout and IMMEDIATE transactions keep them from
// failing.
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "h.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%2]
			for i := 0; i < 15; i++ {
				p, err := s.CreateProgram(ctx, Program{ID: fmt.Sprintf("w%d-%d", w, i), UserID: "u"})
				if err == nil {
					_, err = s.SaveTransition(ctx, p, lifecycle.Created, lifecycle.Building, "")
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if _, total, err := stores[0].ListPrograms(ctx, ProgramFilter{}); err != nil || total != 8*15 {
		t.Errorf("total %d, %v", total, err)
	}
}

func BenchmarkSaveTransition(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			ctx := context.Background()
			s, err := open(filepath.Join(b.TempDir(), "h.db"), options{synchronous: sync, readers: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			p := mustCreate(b, s, Program{ID: "p", UserID: "u"})
			states := []lifecycle.State{lifecycle.Building, lifecycle.Starting, lifecycle.Ready, lifecycle.Stopping, lifecycle.Stopped, lifecycle.Created}
			from, n := lifecycle.Created, 0
			for b.Loop() {
				to := states[n%len(states)]
				p.Seq++
				if p, err = s.SaveTransition(ctx, p, from, to, "bench"); err != nil {
					b.Fatal(err)
				}
				from = to
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

func TestUnusedBuilds(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, id := range []string{"b1", "b2", "b3", "b4"} {
		if _, err := s.UpsertBuild(ctx, Build{ID: id, Status: BuildOK, StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, s, Program{ID: "a", UserID: "ann", Program: lifecycle.Program{BuildID: "b1"}})
	mustCreate(t, s, Program{ID: "b", UserID: "bob", Program: lifecycle.Program{BuildID: "b1"}})
	mustCreate(t, s, Program{ID: "c", UserID: "ann", Program: lifecycle.Program{BuildID: "b2"}})
	mustCreate(t, s, Program{ID: "d", UserID: "ann", Program: lifecycle.Program{BuildID: "b9"}}) // not built yet
	check := func(want ...string) {
		t.Helper()
		got, err := s.UnusedBuilds(ctx)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("UnusedBuilds = %v, %v; want %v", got, err, want)
		}
	}
	check("b3", "b4")
	// A replaced source leaves its old build unused...
	p, _ := s.GetProgram(ctx, "c")
	p.BuildID = "b4"
	if _, err := s.UpdateProgram(ctx, p); err != nil {
		t.Fatal(err)
	}
	check("b2", "b3")
	// ...and so does deleting the last program of a build, not the first.
	if err := s.DeleteProgram(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	check("b2", "b3")
	if err := s.DeleteProgram(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	check("b1", "b2", "b3")
}

// TestReadRowConcurrent: the hot reads go through statements prepared once
// and shared by every reader connection; concurrent callers all get their
// own rows, and a missing row is still ErrNotFound.
func TestReadRowConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, id := range []string{"p0", "p1", "p2", "p3"} {
		mustCreate(t, s, Program{ID: id, UserID: "u-" + id})
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				id := fmt.Sprintf("p%d", (g+i)%4)
				p, err := s.GetProgram(ctx, id)
				if err != nil || p.UserID != "u-"+id {
					t.Errorf("GetProgram(%s) = %+v, %v", id, p, err)
					return
				}
				if _, err := s.GetProgram(ctx, "nope"); !errors.Is(err, ErrNotFound) {
					t.Errorf("GetProgram(nope): %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	s.stmts.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d prepared statements, want 1 (one query text)", n)
	}
}
