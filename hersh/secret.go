package hersh

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvSecretsDir names the directory secrets are read from; the Hershy Host
// mounts a program's secrets read-only at /run/secrets.
const EnvSecretsDir = "HERSH_SECRETS_DIR"

// DefaultSecretsDir is where the Host puts secrets.
const DefaultSecretsDir = "/run/secrets"

// ErrNoSecret is returned (wrapped) by Secret for a secret that is not set.
var ErrNoSecret = errors.New("hersh: secret not set")

// Secret returns the value of a named secret (an exchange key, say) that
// the program's owner stored with the Host. Secrets are files, never
// environment variables, so they do not show in the image, the container's
// configuration or its logs. A trailing newline is kept: the value is
// exactly what was stored.
func Secret(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return "", fmt.Errorf("hersh: invalid secret name %q", name)
	}
	dir := os.Getenv(EnvSecretsDir)
	if dir == "" {
		dir = DefaultSecretsDir
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s", ErrNoSecret, name)
	}
	if err != nil {
		return "", fmt.Errorf("hersh: reading secret %s: %w", name, err)
	}
	return string(b), nil
}
