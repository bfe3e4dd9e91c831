package store

import (
	"context"
	"database/sql"
	"time"
)

// Token is an API token. Only the SHA-256 hash (hex) of the secret is
// stored; the secret itself is shown once, by the Host, at creation.
type Token struct {
	ID        string
	UserID    string
	Hash      string // sha256 of the token, lower-case hex
	IsAdmin   bool
	CreatedAt time.Time
	RevokedAt *time.Time // nil while the token is valid
}

const tokenCols = `id, user_id, hash, is_admin, created_at, revoked_at`

func scanToken(sc scanner) (Token, error) {
	var (
		t       Token
		created int64
		revoked sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.UserID, &t.Hash, &t.IsAdmin, &created, &revoked); err != nil {
		return Token{}, err
	}
	t.CreatedAt = fromNanos(created)
	t.RevokedAt = fromNullNanos(revoked)
	return t, nil
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// CreateToken stores a token. An empty ID gets a random one; a zero
// CreatedAt is now; RevokedAt is ignored. Hash must be 64 lower-case hex
// digits (a SHA-256), so a raw secret cannot be stored by mistake. A
// duplicate ID or hash is ErrConflict. It returns the row as stored.
func (s *Store) CreateToken(ctx context.Context, t Token) (Token, error) {
	if t.ID == "" {
		t.ID = randomID()
	}
	switch {
	case t.UserID == "":
		return Token{}, wrap("create token", invalid("empty user id"))
	case !validHash(t.Hash):
		return Token{}, wrap("create token", invalid("hash must be a lower-case hex SHA-256"))
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.stamp()
	}
	var out Token
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanToken(tx.QueryRowContext(ctx, `INSERT INTO tokens (id, user_id, hash, is_admin, created_at)
VALUES (?, ?, ?, ?, ?) RETURNING `+tokenCols, t.ID, t.UserID, t.Hash, t.IsAdmin, toNanos(t.CreatedAt)))
		return err
	})
	if err != nil {
		return Token{}, wrap("create token", err)
	}
	return out, nil
}

// TokenByHash returns the valid (not revoked) token with this hash, or
// ErrNotFound: a revoked token is not found.
func (s *Store) TokenByHash(ctx context.Context, hash string) (Token, error) {
	t, err := scanToken(s.readRow(ctx, `SELECT `+tokenCols+` FROM tokens
WHERE hash = ? AND revoked_at IS NULL`, hash))
	if err != nil {
		return Token{}, wrap("token by hash", err)
	}
	return t, nil
}

// ListTokens returns the tokens of userID (all tokens when userID is ""),
// revoked ones included, oldest first.
func (s *Store) ListTokens(ctx context.Context, userID string) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens
WHERE (?1 = '' OR user_id = ?1) ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, wrap("list tokens", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, wrap("list tokens", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list tokens", err)
	}
	return out, nil
}

// RevokeToken marks a token revoked (idempotent: the first revocation time
// is kept), or returns ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, toNanos(s.stamp()), id)
	})
	return wrap("revoke token "+id, err)
}
