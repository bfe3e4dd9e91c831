package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/hershyorg/hershy/internal/builder"
	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/store"
)

// Secrets are files under programs/<id>/secrets/<name> (directory 0700,
// files 0600, both owned by the program's uid so that the container user can
// read them), mounted read-only at /run/secrets. Their values never enter
// the database, the image, the environment or any API answer; only their
// names (store.Secret) are recorded. A change takes effect at the next
// start or restart.

// SecretsMountPath is where a program finds its secrets.
const SecretsMountPath = "/run/secrets"

// MaxSecretBytes caps one secret's value.
const MaxSecretBytes = 32 << 10

// MaxSecrets caps a program's secrets: with MaxSecretBytes, what one
// program may keep on the Host's disk this way.
const MaxSecrets = 100

var secretName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func (h *Host) secretsDir(id string) string { return filepath.Join(h.programDir(id), "secrets") }

// ensureSecretsDir creates the program's secrets directory, owned by the
// program's user (ignored when the Host may not chown, e.g. rootless).
func (h *Host) ensureSecretsDir(id string) (string, error) {
	dir := h.secretsDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chown(dir, builder.ProgramUID, builder.ProgramGID); err != nil && !errors.Is(err, os.ErrPermission) {
		return "", err
	}
	return dir, nil
}

// secretMounts is the read-only mount of the program's secrets directory.
func (h *Host) secretMounts(id string) []driver.Mount {
	dir, err := h.ensureSecretsDir(id)
	if err != nil {
		h.log.Warn("secrets directory", "program", id, "err", err)
		return nil
	}
	return []driver.Mount{{Source: dir, Target: SecretsMountPath, ReadOnly: true}}
}

// SetSecret stores (or replaces) a named secret of a program.
func (h *Host) SetSecret(ctx context.Context, id, name string, value []byte) (store.Secret, error) {
	if !secretName.MatchString(name) {
		return store.Secret{}, fmt.Errorf("%w: secret name %q is not valid (letters, digits, _ . -; at most 128)", ErrInvalid, name)
	}
	if len(value) > MaxSecretBytes {
		return store.Secret{}, fmt.Errorf("%w: a secret value is at most %d bytes", ErrInvalid, MaxSecretBytes)
	}
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return store.Secret{}, err
	}
	h.secretsMu.Lock() // the count and the write, one step
	defer h.secretsMu.Unlock()
	have, err := h.store.ListSecrets(ctx, id)
	if err != nil {
		return store.Secret{}, err
	}
	if len(have) >= MaxSecrets && !slices.ContainsFunc(have, func(s store.Secret) bool { return s.Name == name }) {
		return store.Secret{}, fmt.Errorf("%w: a program has at most %d secrets", ErrQuota, MaxSecrets)
	}
	dir, err := h.ensureSecretsDir(id)
	if err != nil {
		return store.Secret{}, err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return store.Secret{}, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(value)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		if cerr := f.Chown(builder.ProgramUID, builder.ProgramGID); cerr != nil && !errors.Is(cerr, os.ErrPermission) {
			err = cerr
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Secret{}, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return store.Secret{}, err
	}
	return h.store.PutSecret(ctx, id, name)
}

// DeleteSecret removes a named secret, or returns ErrNotFound.
func (h *Host) DeleteSecret(ctx context.Context, id, name string) error {
	if !secretName.MatchString(name) {
		return fmt.Errorf("secret %q: %w", name, ErrNotFound)
	}
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return err
	}
	if err := h.store.DeleteSecret(ctx, id, name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(h.secretsDir(id), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Secrets lists a program's secret names (never their values).
func (h *Host) Secrets(ctx context.Context, id string) ([]store.Secret, error) {
	if _, err := h.store.GetProgram(ctx, id); err != nil {
		return nil, err
	}
	return h.store.ListSecrets(ctx, id)
}
