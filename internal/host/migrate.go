package host

import (
	"context"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/source"
	"github.com/hershyorg/hershy/internal/store"
)

// migrateBuildIDs moves programs stored by the first Hosts, whose build ids
// did not include the owner, to build ids that do (source.BuildID): the
// program keeps running on its image and is rebuilt at its next start,
// exactly as after a source upgrade.
func (h *Host) migrateBuildIDs(ctx context.Context) error {
	h.mu.Lock()
	var legacy []store.Program
	for _, r := range h.rows {
		if source.IsLegacyBuildID(r.BuildID) {
			legacy = append(legacy, r)
		}
	}
	h.mu.Unlock()
	for _, r := range legacy {
		files, dockerfile, err := source.ReadTree(filepath.Join(h.programDir(r.ID), "src"))
		if err != nil {
			h.log.Warn("cannot read a program's source to update its build id", "program", r.ID, "err", err)
			continue
		}
		if source.LegacyBuildID(dockerfile, files) != r.BuildID {
			// Not the source that id names: a build would refuse it anyway.
			h.log.Warn("a program's stored source does not hash to its build id; left as it is", "program", r.ID)
			continue
		}
		s, err := h.sup(r.ID)
		if err != nil {
			return err
		}
		id := source.BuildID(r.UserID, dockerfile, files)
		if _, err := s.Do(ctx, lifecycle.SetSource{BuildID: id}, nil); err != nil {
			return err
		}
		h.log.Info("build id updated", "program", r.ID, "from", r.BuildID, "to", id)
	}
	return nil
}
