package host

import (
	"context"
	"errors"
	"fmt"

	"github.com/hershyorg/hershy/internal/driver"
)

// collectBuilds removes the image, build log and record of every build that
// no program has as its current build any more: the old build of a
// replaced source (once its container is gone) and a deleted program's.
// An image still in use (a container of another Host on the engine, or an
// image a Dockerfile program was built FROM) stays, with its record, and
// is tried again at the next collection. It runs after a delete, after a
// start and when the Host opens.
//
// buildsMu makes a collection and a build exclusive: a build holds it
// shared from before it looks for a reusable image until its record is
// written, so a collection never removes an image a build just decided to
// reuse.
func (h *Host) collectBuilds(ctx context.Context) error {
	h.buildsMu.Lock()
	defer h.buildsMu.Unlock()
	ids, err := h.store.UnusedBuilds(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		err := h.driver.RemoveImage(ctx, imageTag(id))
		if errors.Is(err, driver.ErrInUse) {
			h.log.Debug("unused build's image still in use; kept", "build", id)
			continue
		}
		if err != nil && !errors.Is(err, driver.ErrNotFound) {
			errs = append(errs, fmt.Errorf("removing image of %s: %w", id, err))
			continue
		}
		h.builder.Logs().Remove(id)
		if err := h.store.DeleteBuild(ctx, id); err != nil {
			errs = append(errs, err)
		}
		h.log.Info("removed unused build", "build", id)
	}
	return errors.Join(errs...)
}

// collectBuildsLogged runs collectBuilds, logging (not returning) its
// error: a failed collection must not fail the operation it follows.
func (h *Host) collectBuildsLogged(ctx context.Context) {
	if err := h.collectBuilds(ctx); err != nil {
		h.log.Warn("collecting unused builds", "err", err)
	}
}
