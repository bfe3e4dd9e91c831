package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// Releases: every source a program is given (at create, by an update that
// changes it, by a rollback) is a numbered release. The newest
// Options.KeepReleases are kept, each with its source in
// programs/<id>/releases/<build id>/ and its build's image (a kept release
// keeps its build from the collection of unused builds), so a rollback
// needs no rebuild.

// DefaultKeepReleases is how many releases a program keeps by default.
const DefaultKeepReleases = 10

func (h *Host) releasesDir(id string) string { return filepath.Join(h.programDir(id), "releases") }

// addRelease records the program's new source as its next release, keeps
// a copy of the source, and drops what the releases no longer kept used.
func (h *Host) addRelease(ctx context.Context, id, buildID, by, note, dockerfile string, files source.Files) (store.Release, error) {
	snap := filepath.Join(h.releasesDir(id), buildID)
	if _, err := os.Stat(snap); errors.Is(err, os.ErrNotExist) {
		tmp := snap + ".new"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(h.releasesDir(id), 0o700); err != nil {
			return store.Release{}, fmt.Errorf("keeping the release's source: %w", err)
		}
		if err := source.WriteTree(tmp, dockerfile, files); err != nil {
			return store.Release{}, fmt.Errorf("keeping the release's source: %w", err)
		}
		if err := os.Rename(tmp, snap); err != nil {
			return store.Release{}, fmt.Errorf("keeping the release's source: %w", err)
		}
	}
	r, err := h.store.AddRelease(ctx, store.Release{
		ProgramID: id, BuildID: buildID, CreatedBy: by, Digest: source.Digest(dockerfile, files), Note: note,
	}, h.opts.KeepReleases)
	if err != nil {
		return store.Release{}, err
	}
	h.pruneReleaseSources(ctx, id)
	return r, nil
}

// pruneReleaseSources removes the kept sources no kept release names.
func (h *Host) pruneReleaseSources(ctx context.Context, id string) {
	rs, err := h.store.Releases(ctx, id)
	if err != nil {
		h.log.Warn("listing releases", "program", id, "err", err)
		return
	}
	kept := map[string]bool{}
	for _, r := range rs {
		kept[r.BuildID] = true
	}
	entries, _ := os.ReadDir(h.releasesDir(id))
	for _, e := range entries {
		if !kept[e.Name()] {
			os.RemoveAll(filepath.Join(h.releasesDir(id), e.Name()))
		}
	}
}

// Releases lists the program's kept releases, newest first.
func (h *Host) Releases(ctx context.Context, id string) ([]store.Release, error) {
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return nil, err
	}
	return h.store.Releases(ctx, id)
}

// Rollback puts the program back on an earlier kept release (to; 0 is the
// one before the newest) as a new release, with the same /state, and
// starts it on that release: a restart if it runs, a start if not. The
// release's image is kept, so nothing is built unless it was removed.
func (h *Host) Rollback(ctx context.Context, id string, to int, by string) (store.Release, store.Program, error) {
	rs, err := h.Releases(ctx, id)
	if err != nil {
		return store.Release{}, store.Program{}, err
	}
	if to == 0 {
		if len(rs) < 2 {
			return store.Release{}, store.Program{}, fmt.Errorf("%w: the program has no earlier release to roll back to", ErrInvalid)
		}
		to = rs[1].Number
	}
	var target *store.Release
	for i := range rs {
		if rs[i].Number == to {
			target = &rs[i]
		}
	}
	if target == nil {
		return store.Release{}, store.Program{}, fmt.Errorf("%w: release %d is not kept (the program keeps its last %d)", ErrNotFound, to, h.opts.KeepReleases)
	}
	files, dockerfile, err := source.ReadTree(filepath.Join(h.releasesDir(id), target.BuildID))
	if err != nil {
		return store.Release{}, store.Program{}, fmt.Errorf("reading release %d's source: %w", to, err)
	}
	if _, err := h.update(ctx, id, UpdateRequest{Dockerfile: dockerfile, Files: files, By: by}, fmt.Sprintf("rollback to %d", to), true); err != nil {
		return store.Release{}, store.Program{}, err
	}
	row, err := h.current(ctx, id)
	if err != nil {
		return store.Release{}, store.Program{}, err
	}
	switch row.Desired {
	case lifecycle.DesiredRunning:
		row, err = h.Restart(ctx, id)
	default:
		row, err = h.Start(ctx, id)
	}
	if err != nil {
		return store.Release{}, store.Program{}, err
	}
	rs, err = h.store.Releases(ctx, id)
	if err != nil || len(rs) == 0 {
		return store.Release{}, row, err
	}
	return rs[0], row, nil
}
