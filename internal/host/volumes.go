package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/store"
)

// With a driver that keeps volumes (driver.VolumeKeeper: Kubernetes, whose
// nodes are not the Host), a program's /state is the engine's volume, sized
// by the program's state_bytes, and its secrets are copied from the data
// directory (still where they are kept) into the engine's secret at each
// launch. The Host then keeps no /state filesystem of its own.

func stateVolume(id string) string   { return "hersh-state-" + id }
func secretsVolume(id string) string { return "hersh-secrets-" + id }

// volumeMounts are the program's mounts of the engine's volumes.
func volumeMounts(id string) []driver.Mount {
	return []driver.Mount{
		{Kind: driver.MountClaim, Source: stateVolume(id), Target: "/state"},
		{Kind: driver.MountSecret, Source: secretsVolume(id), Target: SecretsMountPath, ReadOnly: true},
	}
}

func (h *Host) volumeLabels(id string) map[string]string {
	return map[string]string{driver.LabelManaged: "true", driver.LabelProgram: id, driver.LabelInstance: h.instance}
}

// ensureVolumes makes (or grows) the program's /state volume and writes
// its secrets into the engine's secret, before a launch.
func (h *Host) ensureVolumes(ctx context.Context, row store.Program) error {
	if err := h.volumes.EnsureVolume(ctx, stateVolume(row.ID), h.stateLimit(row), h.volumeLabels(row.ID)); err != nil {
		if errors.Is(err, driver.ErrInvalidSpec) {
			return fmt.Errorf("%w: /state: %v", ErrInvalid, err)
		}
		return fmt.Errorf("/state: %w", err)
	}
	files, err := h.secretFiles(row.ID)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	if err := h.volumes.PutSecret(ctx, secretsVolume(row.ID), files, h.volumeLabels(row.ID)); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return nil
}

// secretFiles reads the program's secrets from the data directory.
func (h *Host) secretFiles(id string) (map[string][]byte, error) {
	files := map[string][]byte{}
	entries, err := os.ReadDir(h.secretsDir(id))
	if errors.Is(err, os.ErrNotExist) {
		return files, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !secretName.MatchString(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(h.secretsDir(id), e.Name()))
		if err != nil {
			return nil, err
		}
		files[e.Name()] = b
	}
	return files, nil
}

// removeVolumes removes the program's secret from the engine, and its
// volume unless keepState.
func (h *Host) removeVolumes(ctx context.Context, id string, keepState bool) error {
	if err := h.volumes.RemoveSecret(ctx, secretsVolume(id)); err != nil {
		return err
	}
	if keepState {
		h.log.Info("keeping the program's /state volume", "program", id, "volume", stateVolume(id))
		return nil
	}
	return h.volumes.RemoveVolume(ctx, stateVolume(id))
}
