package host

import (
	"context"
	"fmt"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// Restart stops the program and starts it again (reusing the image unless
// the source changed). Restarting a program that is not running is a
// start, checked against the memory quota like one.
func (h *Host) Restart(ctx context.Context, id string) (store.Program, error) {
	return h.commandAdmitted(ctx, id, lifecycle.Restart{})
}

// SetRestartPolicy changes when the program is restarted after its
// container exits: always, on-failure or never.
func (h *Host) SetRestartPolicy(ctx context.Context, id, policy string) (store.Program, error) {
	p, err := lifecycle.ParseRestartPolicy(policy)
	if err != nil {
		return store.Program{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return h.command(ctx, id, lifecycle.SetPolicy{Policy: p}, nil)
}
