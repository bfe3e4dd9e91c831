package host

import (
	"context"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// Start builds the program if its image is missing, then runs it. Allowed
// from Created, Stopped and Error; a manual start resets the restart backoff.
// It fails with ErrQuota when the program's memory does not fit in what its
// user's running programs leave of the user's memory quota.
func (h *Host) Start(ctx context.Context, id string) (store.Program, error) {
	return h.commandAdmitted(ctx, id, lifecycle.Start{})
}
