// Package tokens issues and checks the API's bearer tokens. A token is a
// random string ("hsy_" and 64 hex digits) shown once, when it is made;
// only its SHA-256 is stored, so a copy of the Host's database holds no
// usable token. A revoked token is never found again.
package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// AdminUserID is the user id of the admin token.
const AdminUserID = "admin"

// ErrInvalid is a token that is malformed, unknown or revoked.
var ErrInvalid = errors.New("invalid or revoked token")

// ErrBadUser is a user id a token cannot be made for (wrapped).
var ErrBadUser = errors.New("invalid user id")

// Principal is who a valid token speaks for.
type Principal struct {
	TokenID string
	UserID  string
	Admin   bool
}

// Tokens issues and checks tokens kept in a store.
//
// Valid tokens are remembered after their first check, so a request costs
// a hash and a map read, not a database query. The store stays the source
// of truth: the memory holds only what it answered, is lost with the
// process, and every revocation goes through Revoke, which forgets the
// token before it returns (one Host owns a data directory, so nothing
// else revokes behind its back). An unknown token is looked up every time
// and never remembered, so guesses cannot fill the memory.
type Tokens struct {
	st *store.Store

	mu    sync.RWMutex
	valid map[[sha256.Size]byte]Principal
	gen   uint64 // grows at each revocation: a lookup that began before one is not remembered

	afterLookup func() // tests: runs between the store's answer and remembering it
}

// maxRemembered bounds the memory of valid tokens; past it, it starts over.
const maxRemembered = 10000

// New returns the tokens of st.
func New(st *store.Store) *Tokens {
	return &Tokens{st: st, valid: map[[sha256.Size]byte]Principal{}}
}

// Check returns who the raw token speaks for, or ErrInvalid.
func (t *Tokens) Check(ctx context.Context, raw string) (Principal, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 512 {
		return Principal{}, ErrInvalid
	}
	sum := sha256.Sum256([]byte(raw))
	t.mu.RLock()
	p, ok := t.valid[sum]
	gen := t.gen
	t.mu.RUnlock()
	if ok {
		return p, nil
	}
	tok, err := t.st.TokenByHash(ctx, hex.EncodeToString(sum[:]))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrInvalid
	}
	if err != nil {
		return Principal{}, err
	}
	p = Principal{TokenID: tok.ID, UserID: tok.UserID, Admin: tok.IsAdmin}
	if t.afterLookup != nil {
		t.afterLookup()
	}
	t.mu.Lock()
	if t.gen == gen {
		if len(t.valid) >= maxRemembered {
			clear(t.valid)
		}
		t.valid[sum] = p
	}
	t.mu.Unlock()
	return p, nil
}

// Create makes a token for userID and returns it (shown this once) with
// its record. The admin's user id is reserved (EnsureAdmin makes that
// token).
func (t *Tokens) Create(ctx context.Context, userID string) (raw string, rec store.Token, err error) {
	if err := source.ValidateUserID(userID); err != nil {
		return "", store.Token{}, fmt.Errorf("%w: %w", ErrBadUser, err)
	}
	if userID == AdminUserID {
		return "", store.Token{}, fmt.Errorf("%w: user_id %s is reserved for the admin token", ErrBadUser, AdminUserID)
	}
	raw = newRaw()
	rec, err = t.st.CreateToken(ctx, store.Token{UserID: userID, Hash: hash(raw)})
	return raw, rec, err
}

// List returns the tokens of userID (all when empty), revoked ones too.
func (t *Tokens) List(ctx context.Context, userID string) ([]store.Token, error) {
	return t.st.ListTokens(ctx, userID)
}

// Revoke revokes a token by id (store.ErrNotFound when there is none).
// When it returns, no Check accepts the token any more.
func (t *Tokens) Revoke(ctx context.Context, id string) error {
	err := t.st.RevokeToken(ctx, id)
	// Forget it even when the store failed: the next check asks the store.
	t.mu.Lock()
	t.gen++
	for k, p := range t.valid {
		if p.TokenID == id {
			delete(t.valid, k)
		}
	}
	t.mu.Unlock()
	return err
}

// EnsureAdmin makes sure an admin token exists: on first start it creates a
// random one, stores its hash as admin and writes it to
// <dataDir>/admin.token (0600); later it reads the file back and checks the
// token is still valid (making a new one when it was revoked or lost).
func (t *Tokens) EnsureAdmin(ctx context.Context, dataDir string) (raw, path string, created bool, err error) {
	path = filepath.Join(dataDir, "admin.token")
	if b, rerr := os.ReadFile(path); rerr == nil {
		raw := strings.TrimSpace(string(b))
		p, cerr := t.Check(ctx, raw)
		switch {
		case cerr == nil && p.Admin:
			if err := os.Chmod(path, 0o600); err != nil {
				return "", "", false, err
			}
			return raw, path, false, nil
		case cerr != nil && !errors.Is(cerr, ErrInvalid):
			return "", "", false, cerr
		}
	} else if !errors.Is(rerr, os.ErrNotExist) {
		return "", "", false, rerr
	}
	raw = newRaw()
	if _, err := t.st.CreateToken(ctx, store.Token{UserID: AdminUserID, Hash: hash(raw), IsAdmin: true}); err != nil {
		return "", "", false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(raw+"\n"), 0o600); err != nil {
		return "", "", false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", "", false, err
	}
	return raw, path, true, nil
}

func hash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

func newRaw() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "hsy_" + hex.EncodeToString(b)
}
