package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/statefs"
	"github.com/hershyorg/hershy/internal/store"
)

// UpdateRequest changes a stored program: its source and the settings that
// may change after create. A zero field leaves its setting as it is.
type UpdateRequest struct {
	// Dockerfile and Files are a new source (Files nil: keep the source).
	// It takes effect at the next start or restart, with the same /state.
	Dockerfile string
	Files      source.Files
	// StateBytes is a new cap of /state. Raising it works while the program
	// runs where the kernel can grow a mounted filesystem; otherwise, and to
	// lower it, the program must not be running (ErrConflict). A cap below
	// what the program stores is ErrInvalid.
	StateBytes int64
	// RestartPolicy is a new restart policy: always, on-failure or never.
	RestartPolicy string
	// By is the user asking, recorded with a new release ("": the owner).
	By string
}

// Update applies req to program id as one change: every part is checked
// before any is applied, and a part that fails undoes the ones applied
// before it, so the program is left either fully updated or as it was.
func (h *Host) Update(ctx context.Context, id string, req UpdateRequest) (store.Program, error) {
	return h.update(ctx, id, req, "", false)
}

// update is Update, recording a new source as a release with note (a
// rollback records one even when the source is the current one: always).
func (h *Host) update(ctx context.Context, id string, req UpdateRequest, note string, always bool) (_ store.Program, err error) {
	defer func() { err = h.relErr(err) }()
	h.updateMu.Lock()
	defer h.updateMu.Unlock()
	s, err := h.sup(id)
	if err != nil {
		return store.Program{}, err
	}
	row, err := h.current(ctx, id)
	if err != nil {
		return store.Program{}, err
	}

	// Check everything first.
	var policy lifecycle.RestartPolicy
	if req.RestartPolicy != "" {
		if policy, err = lifecycle.ParseRestartPolicy(req.RestartPolicy); err != nil {
			return store.Program{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	newState := req.StateBytes != 0 && req.StateBytes != row.Options.StateBytes
	if newState {
		if err := h.checkStateBytes(req.StateBytes); err != nil {
			return store.Program{}, err
		}
	}
	buildID := row.BuildID
	if req.Files != nil {
		if err := h.checkSource(ctx, row.UserID, req.Dockerfile, req.Files); err != nil {
			return store.Program{}, err
		}
		buildID = source.BuildID(row.UserID, req.Dockerfile, req.Files)
	}
	if s.Program().State == lifecycle.Deleting {
		return store.Program{}, fmt.Errorf("%w: the program is being deleted", ErrConflict)
	}

	// Then apply, undoing on failure. /state first: it is the part most
	// likely to be refused (in use, too small).
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if newState && h.volumes != nil {
		// An engine's volume grows (and never shrinks) at once; it is
		// not put back if the rest of the update fails.
		grown := row
		grown.Options.StateBytes = req.StateBytes
		if err := h.ensureVolumes(ctx, grown); err != nil {
			return store.Program{}, err
		}
	}
	if newState && h.states != nil {
		old := h.stateLimit(row)
		if err := h.resizeState(ctx, id, req.StateBytes); err != nil {
			return store.Program{}, err
		}
		undo = append(undo, func() {
			if rerr := h.resizeState(context.WithoutCancel(ctx), id, old); rerr != nil {
				h.log.Error("putting /state back to its size after a failed update", "program", id, "err", rerr)
			}
		})
	}
	if buildID != row.BuildID {
		restore, err := h.swapSource(id, req.Dockerfile, req.Files)
		if err != nil {
			return store.Program{}, err
		}
		undo = append(undo, restore)
		if _, err := s.Do(ctx, lifecycle.SetSource{BuildID: buildID}, nil); err != nil {
			return store.Program{}, err
		}
		undo = append(undo, func() {
			s.Do(context.WithoutCancel(ctx), lifecycle.SetSource{BuildID: row.BuildID}, nil)
		})
	}
	if policy != "" && policy != row.Policy {
		if _, err := s.Do(ctx, lifecycle.SetPolicy{Policy: policy}, nil); err != nil {
			return store.Program{}, err
		}
		undo = append(undo, func() {
			s.Do(context.WithoutCancel(ctx), lifecycle.SetPolicy{Policy: row.Policy}, nil)
		})
	}
	if newState {
		if _, err := h.updateOptions(ctx, id, func(o *store.Options) { o.StateBytes = req.StateBytes }); err != nil {
			return store.Program{}, err
		}
	}
	os.RemoveAll(filepath.Join(h.programDir(id), "src.old")) // the replaced source, kept for an undo
	if req.Files != nil && (buildID != row.BuildID || always) {
		by := req.By
		if by == "" {
			by = row.UserID
		}
		if _, err := h.addRelease(ctx, id, buildID, by, note, req.Dockerfile, req.Files); err != nil {
			h.log.Warn("recording a release", "program", id, "err", err)
		}
		h.collectBuildsLogged(ctx)
	}
	return h.current(ctx, id)
}

// ReplaceSource stores new source for a program (a new build id; the same
// /state). It takes effect at the next start or restart.
func (h *Host) ReplaceSource(ctx context.Context, id, dockerfile string, files source.Files) (store.Program, error) {
	if files == nil {
		files = source.Files{}
	}
	return h.Update(ctx, id, UpdateRequest{Dockerfile: dockerfile, Files: files})
}

// SetStateBytes changes the cap of the program's /state (see
// UpdateRequest.StateBytes).
func (h *Host) SetStateBytes(ctx context.Context, id string, n int64) (store.Program, error) {
	if n == 0 {
		n = h.opts.StateBytes
	}
	return h.Update(ctx, id, UpdateRequest{StateBytes: n})
}

// checkSource checks a source as Create does: valid files, a build file, the
// Dockerfile policy and its ownership rule, the Go module.
func (h *Host) checkSource(ctx context.Context, user, dockerfile string, files source.Files) error {
	if err := source.ValidateSource(dockerfile, files, h.opts.Source); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !source.IsGoModule(dockerfile, files) && dockerfile == "" && files[source.DockerfileName] == "" {
		return fmt.Errorf("%w: without a dockerfile the files must form a Go module (a go.mod at the root)", ErrInvalid)
	}
	if err := h.checkDockerfile(ctx, user, dockerfile, files); err != nil {
		return err
	}
	return h.checkGoModule(dockerfile, files)
}

// swapSource puts a new source tree in place of the program's (written
// beside it, then renamed) and returns what puts the old one back.
func (h *Host) swapSource(id, dockerfile string, files source.Files) (restore func(), err error) {
	dir := h.programDir(id)
	src, next, old := filepath.Join(dir, "src"), filepath.Join(dir, "src.next"), filepath.Join(dir, "src.old")
	os.RemoveAll(next)
	if err := source.WriteTree(next, dockerfile, files); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	os.RemoveAll(old)
	if err := os.Rename(src, old); err != nil {
		os.RemoveAll(next)
		return nil, err
	}
	if err := os.Rename(next, src); err != nil {
		os.Rename(old, src)
		return nil, err
	}
	return func() {
		if err := os.Rename(src, next); err == nil {
			os.Rename(old, src)
		}
		os.RemoveAll(next)
		os.RemoveAll(old)
	}, nil
}

// resizeState changes the size of the program's /state filesystem.
func (h *Host) resizeState(ctx context.Context, id string, n int64) error {
	err := h.states.Resize(ctx, h.programDir(id), n)
	switch {
	case errors.Is(err, statefs.ErrBusy):
		return fmt.Errorf("%w: state_bytes: the program's /state is in use: stop the program to change its size", ErrConflict)
	case errors.Is(err, statefs.ErrTooSmall):
		return fmt.Errorf("%w: state_bytes: %v", ErrInvalid, err)
	}
	return err
}

// Source returns a program's stored files (the Dockerfile among them when
// it has one).
func (h *Host) Source(ctx context.Context, id string) (source.Files, error) {
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return nil, err
	}
	files, dockerfile, err := source.ReadTree(filepath.Join(h.programDir(id), "src"))
	if err != nil {
		return nil, err
	}
	if dockerfile != "" {
		files[source.DockerfileName] = dockerfile
	}
	return files, nil
}
