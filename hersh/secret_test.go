package hersh

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvSecretsDir, dir)
	if err := os.WriteFile(filepath.Join(dir, "BINANCE_KEY"), []byte("k3y\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if v, err := Secret("BINANCE_KEY"); err != nil || v != "k3y\n" {
		t.Fatalf("Secret = %q, %v", v, err)
	}
	if _, err := Secret("MISSING"); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("missing secret: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "../etc/passwd", "a/b", "a\x00b"} {
		if _, err := Secret(bad); err == nil || errors.Is(err, ErrNoSecret) {
			t.Errorf("Secret(%q) = %v, want an invalid-name error", bad, err)
		}
	}
}
