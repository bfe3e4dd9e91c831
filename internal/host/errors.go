package host

import (
	"errors"
	"strings"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// Errors the API maps to status codes.
var (
	ErrNotFound = store.ErrNotFound     // 404
	ErrConflict = lifecycle.ErrConflict // 409
	ErrInvalid  = errors.New("invalid") // 400
)

// trimPrefix is err with prefix cut from its message (a lower package's
// name, say, which means nothing to the API's user); errors.Is and As still
// see err.
func trimPrefix(err error, prefix string) error { return prefixless{err, prefix} }

type prefixless struct {
	err    error
	prefix string
}

func (p prefixless) Error() string { return strings.TrimPrefix(p.err.Error(), p.prefix) }
func (p prefixless) Unwrap() error { return p.err }
