package fake

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"

	"github.com/hershyorg/hershy/internal/driver"
)

// Volumes is a fake engine that keeps programs' volumes and secrets
// itself (driver.VolumeKeeper), as the Kubernetes driver does: its
// containers mount them by name (driver.MountClaim, driver.MountSecret)
// instead of Host folders. A Host on it keeps no /state of its own. The
// Driver without this wrapper is an engine of Host folders only.
type Volumes struct {
	*Driver

	dir string

	mu      sync.Mutex
	volumes map[string]Volume
	secrets map[string]map[string][]byte
}

// Volume is what the fake keeps of a volume.
type Volume struct {
	Bytes  int64
	Labels map[string]string
}

// WithVolumes makes d an engine that keeps volumes, their files in
// folders under dir (what a container writes to a volume lands there).
func WithVolumes(d *Driver, dir string) *Volumes {
	v := &Volumes{Driver: d, dir: dir, volumes: map[string]Volume{}, secrets: map[string]map[string][]byte{}}
	d.mu.Lock()
	d.volumeDir = v.folder
	d.mu.Unlock()
	return v
}

// folder is the folder of the volume a mount names, if it is kept.
func (v *Volumes) folder(m driver.Mount) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch m.Kind {
	case driver.MountClaim:
		_, ok := v.volumes[m.Source]
		return filepath.Join(v.dir, "volumes", m.Source), ok
	case driver.MountSecret:
		_, ok := v.secrets[m.Source]
		return filepath.Join(v.dir, "secrets", m.Source), ok
	}
	return "", false
}

// EnsureVolume makes the volume or grows it; a shrink is ErrInvalidSpec.
func (v *Volumes) EnsureVolume(ctx context.Context, name string, bytes int64, labels map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.volumes[name]; ok && old.Bytes > bytes {
		return fmt.Errorf("fake: volume %s: %w: it holds %d bytes and cannot shrink to %d", name, driver.ErrInvalidSpec, old.Bytes, bytes)
	}
	if err := os.MkdirAll(filepath.Join(v.dir, "volumes", name), 0o777); err != nil {
		return err
	}
	v.volumes[name] = Volume{Bytes: bytes, Labels: maps.Clone(labels)}
	return nil
}

// RemoveVolume removes a volume.
func (v *Volumes) RemoveVolume(ctx context.Context, name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.volumes, name)
	if err := os.RemoveAll(filepath.Join(v.dir, "volumes", name)); err != nil {
		return err
	}
	return ctx.Err()
}

// PutSecret replaces a secret's files.
func (v *Volumes) PutSecret(ctx context.Context, name string, files map[string][]byte, labels map[string]string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	dir := filepath.Join(v.dir, "secrets", name)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o444); err != nil {
			return err
		}
	}
	v.secrets[name] = maps.Clone(files)
	return ctx.Err()
}

// RemoveSecret removes a secret.
func (v *Volumes) RemoveSecret(ctx context.Context, name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.secrets, name)
	if err := os.RemoveAll(filepath.Join(v.dir, "secrets", name)); err != nil {
		return err
	}
	return ctx.Err()
}

// Volume returns a kept volume.
func (v *Volumes) Volume(name string) (Volume, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	vol, ok := v.volumes[name]
	return vol, ok
}

// Secret returns a kept secret's files.
func (v *Volumes) Secret(name string) (map[string][]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.secrets[name]
	return maps.Clone(s), ok
}

// Count is how many volumes and secrets are kept.
func (v *Volumes) Count() (volumes, secrets int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.volumes), len(v.secrets)
}
