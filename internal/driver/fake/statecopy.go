package fake

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/statearchive"
)

// The fake copies its volumes' folders as the Kubernetes driver's helper
// does in its Pod (driver.StateCopier): statearchive's writer, and its
// extraction into a folder of the volume swapped in only if commit agrees.

// ExportVolume writes the volume's folder as an archive.
func (v *Volumes) ExportVolume(ctx context.Context, spec driver.VolumeCopy, w io.Writer) error {
	dir, ok := v.folder(driver.Mount{Kind: driver.MountClaim, Source: spec.Volume})
	if !ok {
		return fmt.Errorf("fake: volume %s: %w", spec.Volume, driver.ErrNotFound)
	}
	_, err := statearchive.Write(w, dir)
	return err
}

// ImportVolume extracts the archive beside the volume's files and swaps
// them in once commit agrees.
func (v *Volumes) ImportVolume(ctx context.Context, spec driver.VolumeCopy, r io.Reader, commit func() error) (statearchive.Result, error) {
	dir, ok := v.folder(driver.Mount{Kind: driver.MountClaim, Source: spec.Volume})
	if !ok {
		return statearchive.Result{}, fmt.Errorf("fake: volume %s: %w", spec.Volume, driver.ErrNotFound)
	}
	tmp := filepath.Join(dir, statearchive.TempPrefix+statearchive.NewToken())
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return statearchive.Result{}, err
	}
	defer os.RemoveAll(tmp)
	res, err := statearchive.Extract(r, tmp, spec.Limit, os.Getuid(), os.Getgid())
	if err != nil {
		return statearchive.Result{}, err
	}
	if err := commit(); err != nil {
		return statearchive.Result{}, err
	}
	return res, statearchive.Swap(dir, tmp)
}

// VolumeDir is the folder holding a kept volume's files.
func (v *Volumes) VolumeDir(name string) string {
	return filepath.Join(v.dir, "volumes", name)
}
