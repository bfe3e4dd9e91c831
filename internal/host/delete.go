package host

import (
	"context"
	"fmt"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// Delete removes the program: its containers, its image when no other
// program uses it, its storage and its record. It returns once all of that
// is gone.
func (h *Host) Delete(ctx context.Context, id string) error {
	return h.DeleteWith(ctx, id, DeleteOptions{})
}

// DeleteOptions change what a delete removes.
type DeleteOptions struct {
	// KeepState keeps the program's /state volume in the engine (its name
	// is stateVolume's). Only an engine that keeps volumes can: on the
	// Host's own disk /state goes with the program's folder.
	KeepState bool
}

// DeleteWith is Delete with options.
func (h *Host) DeleteWith(ctx context.Context, id string, o DeleteOptions) error {
	if o.KeepState && h.volumes == nil {
		return fmt.Errorf("%w: keep_state: this Host keeps /state in its data directory, which goes with the program; only a Host whose engine keeps volumes (--engine kubernetes) can keep it", ErrInvalid)
	}
	s, err := h.sup(id)
	if err != nil {
		return err
	}
	if o.KeepState {
		h.keepState.Store(id, true)
	} else {
		h.keepState.Delete(id)
	}
	if _, err := s.Do(ctx, lifecycle.Delete{}, nil); err != nil {
		return err
	}
	// Done when the supervisor ends (the purge succeeded), or when the
	// program leaves Deleting (the purge failed: it is in Error, and a
	// new Delete may be tried).
	for {
		changed := s.Changed() // before the look, so no change falls between
		if p := s.Program(); p.State != lifecycle.Deleting {
			select {
			case <-s.Done():
				return nil
			default:
			}
			return fmt.Errorf("program %s not deleted: %s", id, p.ErrorMsg)
		}
		select {
		case <-s.Done():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// purge is the DoPurge effect.
func (h *Host) purge(ctx context.Context, id string) error {
	if err := h.halt(ctx, id); err != nil {
		return err
	}
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return err
	}
	h.mu.Lock()
	if f, ok := h.files[id]; ok {
		f.Close()
		delete(h.files, id)
	}
	h.mu.Unlock()
	if h.volumes != nil {
		_, keep := h.keepState.Load(id)
		if err := h.removeVolumes(ctx, id, keep); err != nil {
			return fmt.Errorf("removing the engine's volumes: %w", err)
		}
	}
	if err := h.removeProgramDir(id); err != nil {
		return fmt.Errorf("removing storage: %w", err)
	}
	hooks, err := h.store.DeleteProgramWebhooks(ctx, id)
	if err != nil {
		return err
	}
	h.forgetWebhooks(hooks...)
	if err := h.store.DeleteProgram(ctx, id); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.rows, id)
	h.mu.Unlock()
	h.usageMu.Lock()
	delete(h.usage, id)
	h.usageMu.Unlock()
	h.forgetStats(id)
	h.keepState.Delete(id)
	// The image and build log go with the record, unless another program
	// uses the build.
	h.collectBuildsLogged(ctx)
	return nil
}
