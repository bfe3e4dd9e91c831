package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/runtime"
)

// Delete removes the program: its containers, its image when no other
// program uses it, its storage and its record. It returns once all of that
// is gone.
func (h *Host) Delete(ctx context.Context, id string) error {
	s, err := h.sup(id)
	if err != nil {
		return err
	}
	if _, err := s.Do(ctx, lifecycle.Delete{}); err != nil {
		return err
	}
	// Done when the supervisor ends (the purge succeeded), or when the
	// program leaves Deleting (the purge failed: it is in Error, and a
	// new Delete may be tried).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.Done():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if p := s.Program(); p.State != lifecycle.Deleting {
				return fmt.Errorf("program %s not deleted: %s", id, p.ErrorMsg)
			}
		}
	}
}

// purge is the DoPurge effect.
func (h *Host) purge(ctx context.Context, id string) error {
	if err := h.halt(ctx, id); err != nil {
		return err
	}
	row, err := h.store.GetProgram(ctx, id)
	if err != nil {
		return err
	}
	// The image (one per build id) and the build log go when no other
	// program uses the build.
	n, err := h.store.CountProgramsUsingBuild(ctx, row.BuildID)
	if err != nil {
		return err
	}
	if n <= 1 {
		// An image still used by a container outside this Host's records
		// (another Host on the same engine) stays.
		err := h.driver.RemoveImage(ctx, imageTag(row.BuildID))
		if err != nil && !errors.Is(err, runtime.ErrNotFound) && !errors.Is(err, runtime.ErrInUse) {
			return fmt.Errorf("removing image: %w", err)
		}
		h.builder.Logs().Remove(row.BuildID)
	}
	h.mu.Lock()
	if f, ok := h.files[id]; ok {
		f.Close()
		delete(h.files, id)
	}
	h.mu.Unlock()
	if err := os.RemoveAll(h.programDir(id)); err != nil {
		return fmt.Errorf("removing storage: %w", err)
	}
	if err := h.store.DeleteProgram(ctx, id); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.rows, id)
	h.mu.Unlock()
	return nil
}
