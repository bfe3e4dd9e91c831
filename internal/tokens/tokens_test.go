package tokens

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hershyorg/hershy/internal/store"
)

func open(t *testing.T) (*Tokens, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "hershy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st), st
}

func TestCreateCheckRevoke(t *testing.T) {
	ctx := context.Background()
	tk, st := open(t)

	raw, rec, err := tk.Create(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, "hsy_") || len(raw) != 4+64 {
		t.Errorf("token %q: want hsy_ and 64 hex digits", raw)
	}
	p, err := tk.Check(ctx, " "+raw+"\n")
	if err != nil || p != (Principal{TokenID: rec.ID, UserID: "alice"}) {
		t.Errorf("Check: %+v %v", p, err)
	}

	// Only the hash is stored: the raw token appears nowhere in the record.
	got, err := st.TokenByHash(ctx, hash(raw))
	if err != nil || got.Hash == raw || strings.Contains(got.Hash, raw[4:]) {
		t.Errorf("stored record %+v (%v) carries the token", got, err)
	}

	raw2, _, err := tk.Create(ctx, "alice")
	if err != nil || raw2 == raw {
		t.Fatalf("a second token %q (%v) equals the first", raw2, err)
	}

	if err := tk.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Check(ctx, raw); !errors.Is(err, ErrInvalid) {
		t.Errorf("Check of a revoked token: %v, want ErrInvalid", err)
	}
	if _, err := tk.Check(ctx, raw2); err != nil {
		t.Errorf("revoking one token revoked another: %v", err)
	}
	if err := tk.Revoke(ctx, "no-such-token"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Revoke of an unknown id: %v, want ErrNotFound", err)
	}

	list, err := tk.List(ctx, "alice")
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %d tokens (%v), want 2", len(list), err)
	}
	revoked := 0
	for _, r := range list {
		if r.RevokedAt != nil {
			revoked++
		}
	}
	if revoked != 1 {
		t.Errorf("List shows %d revoked, want 1", revoked)
	}
}

func TestCheckRefuses(t *testing.T) {
	ctx := context.Background()
	tk, _ := open(t)
	raw, _, err := tk.Create(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"empty":          "",
		"blank":          "  \t",
		"unknown":        "hsy_" + strings.Repeat("0", 64),
		"prefix":         raw[:len(raw)-1],
		"longer":         raw + "0",
		"upper case":     strings.ToUpper(raw),
		"stored hash":    hash(raw),
		"oversized":      strings.Repeat("a", 513),
		"nul inside":     raw[:10] + "\x00" + raw[10:],
		"sql wildcard":   "%",
		"sql injection":  "' OR 1=1 --",
		"just the label": "hsy_",
	} {
		if p, err := tk.Check(ctx, s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Check = %+v, %v; want ErrInvalid", name, p, err)
		}
	}
}

func TestCreateRefusesBadUsers(t *testing.T) {
	ctx := context.Background()
	tk, _ := open(t)
	for _, u := range []string{"", AdminUserID, "../x", "a b", strings.Repeat("u", 200), "ünï"} {
		if raw, _, err := tk.Create(ctx, u); !errors.Is(err, ErrBadUser) || raw != "" {
			t.Errorf("Create(%q) = %q, %v; want ErrBadUser", u, raw, err)
		}
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	tk, _ := open(t)
	dir := t.TempDir()

	raw, path, created, err := tk.EnsureAdmin(ctx, dir)
	if err != nil || !created || path != filepath.Join(dir, "admin.token") {
		t.Fatalf("first EnsureAdmin: %q %v %v", path, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v, want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != raw {
		t.Errorf("admin.token holds %q, want the token", b)
	}
	if p, err := tk.Check(ctx, raw); err != nil || !p.Admin || p.UserID != AdminUserID {
		t.Errorf("admin token checks as %+v %v", p, err)
	}

	// A second start reads it back (and tightens a loosened mode).
	os.Chmod(path, 0o644)
	raw2, _, created, err := tk.EnsureAdmin(ctx, dir)
	if err != nil || created || raw2 != raw {
		t.Errorf("second EnsureAdmin: %q created=%v %v; want the same token", raw2, created, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after a restart, want 0600", fi.Mode().Perm())
	}

	// A file holding a user's token does not make that user the admin.
	userRaw, _, err := tk.Create(ctx, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte(userRaw+"\n"), 0o600)
	raw3, _, created, err := tk.EnsureAdmin(ctx, dir)
	if err != nil || !created || raw3 == userRaw {
		t.Errorf("EnsureAdmin over a user's token: %q created=%v %v; want a new admin token", raw3, created, err)
	}
	if p, _ := tk.Check(ctx, userRaw); p.Admin {
		t.Error("the user's token became an admin token")
	}

	// A revoked admin token is replaced.
	p, _ := tk.Check(ctx, raw3)
	if err := tk.Revoke(ctx, p.TokenID); err != nil {
		t.Fatal(err)
	}
	raw4, _, created, err := tk.EnsureAdmin(ctx, dir)
	if err != nil || !created || raw4 == raw3 {
		t.Errorf("EnsureAdmin after a revoke: created=%v %v; want a new token", created, err)
	}
}

// TestValidTokensRemembered: a valid token is checked from memory after
// its first check (the store is closed and it still passes), an unknown
// one is asked of the store every time (and so fails with the store's
// error here, not ErrInvalid from a remembered refusal).
func TestValidTokensRemembered(t *testing.T) {
	ctx := context.Background()
	tk, st := open(t)
	raw, _, err := tk.Create(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	unknown := "hsy_" + strings.Repeat("1", 64)
	if _, err := tk.Check(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Check(ctx, unknown); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	st.Close()
	if p, err := tk.Check(ctx, raw); err != nil || p.UserID != "alice" {
		t.Errorf("a checked token, store closed: %+v %v", p, err)
	}
	if _, err := tk.Check(ctx, unknown); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown token, store closed: %v; want the store's error (it is not remembered)", err)
	}
}

// TestRevokeDuringCheck: a check that read the store before a revocation
// and remembers its answer after it must not make the revoked token valid
// again.
func TestRevokeDuringCheck(t *testing.T) {
	ctx := context.Background()
	tk, _ := open(t)
	raw, rec, err := tk.Create(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	tk.afterLookup = func() {
		tk.afterLookup = nil
		if err := tk.Revoke(ctx, rec.ID); err != nil {
			t.Error(err)
		}
	}
	if _, err := tk.Check(ctx, raw); err != nil {
		t.Fatalf("the check that began before the revocation: %v", err)
	}
	if p, err := tk.Check(ctx, raw); !errors.Is(err, ErrInvalid) {
		t.Errorf("after the revocation: %+v %v, want ErrInvalid", p, err)
	}
}

// TestRevokeUnderLoad: while checks run from several goroutines, a
// revocation takes effect for every check that starts after it returns.
func TestRevokeUnderLoad(t *testing.T) {
	ctx := context.Background()
	tk, _ := open(t)
	raw, rec, err := tk.Create(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var revoked atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 300 {
				after := revoked.Load()
				_, err := tk.Check(ctx, raw)
				if after && err == nil {
					t.Error("a check that began after Revoke returned accepted the token")
					return
				}
			}
		})
	}
	if err := tk.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	wg.Wait()
}

func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(b.TempDir(), "hershy.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tk := New(st)
	raw, _, err := tk.Create(ctx, "alice")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("remembered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tk.Check(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store", func(b *testing.B) { // the baseline: what every check cost before
		b.ReportAllocs()
		sum := hash(raw)
		for b.Loop() {
			if _, err := st.TokenByHash(ctx, sum); err != nil {
				b.Fatal(err)
			}
		}
	})
}
