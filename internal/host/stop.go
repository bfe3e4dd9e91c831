package host

import (
	"context"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// Stop stops the program gracefully, cancelling a build or start in
// flight; its containers are removed. It returns at once with the program
// in Stopping (or already Stopped).
func (h *Host) Stop(ctx context.Context, id string) (store.Program, error) {
	return h.command(ctx, id, lifecycle.Stop{}, nil)
}
