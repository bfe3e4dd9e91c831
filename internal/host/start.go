package host

import (
	"context"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// Start builds the program if its image is missing, then runs it. Allowed
// from Created, Stopped and Error; a manual start resets the restart backoff.
func (h *Host) Start(ctx context.Context, id string) (store.Program, error) {
	return h.command(ctx, id, lifecycle.Start{})
}
