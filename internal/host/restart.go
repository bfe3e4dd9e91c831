package host

import (
	"context"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// Restart stops the program and starts it again (reusing the image unless
// the source changed).
func (h *Host) Restart(ctx context.Context, id string) (store.Program, error) {
	return h.command(ctx, id, lifecycle.Restart{})
}
