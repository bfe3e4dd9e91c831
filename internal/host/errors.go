package host

import (
	"errors"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// Errors the API maps to status codes.
var (
	ErrNotFound = store.ErrNotFound     // 404
	ErrConflict = lifecycle.ErrConflict // 409
	ErrInvalid  = errors.New("invalid") // 400
)
