package builder

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hershyorg/hershy/internal/builder/internal/fwzip"
	"github.com/hershyorg/hershy/internal/source"
)

// The hersh framework travels inside the Host binary: go:embed cannot reach
// ../../hersh (another module), so a generated copy of its source is kept
// here. TestFrameworkArchiveFresh fails when it falls behind ../../hersh;
// regenerate it with `go generate ./internal/build`.
//
//go:generate go run ./genframework -src ../../hersh -out hershsrc.zip
//go:embed hershsrc.zip
var frameworkZip []byte

// FrameworkModule is the hersh framework's module path. Go programs require
// it; the Host points it at its own copy with a replace directive.
const FrameworkModule = "github.com/hershyorg/hershy/hersh"

// FrameworkVersion identifies the embedded framework source (a hash of its
// files); the framework is extracted to <data>/framework/<version>.
func FrameworkVersion() (string, error) {
	files, err := fwzip.Unzip(frameworkZip)
	if err != nil {
		return "", err
	}
	return fwzip.Hash(files), nil
}

// extractFramework makes sure <dir>/<version> holds exactly the embedded
// framework source and returns that folder. An existing copy is checked and
// replaced if it differs (say, someone edited it); a new one is written
// atomically.
func extractFramework(dir string) (string, error) {
	files, err := fwzip.Unzip(frameworkZip)
	if err != nil {
		return "", fmt.Errorf("build: embedded framework: %w", err)
	}
	if _, ok := files["go.mod"]; !ok {
		return "", errors.New("build: embedded framework has no go.mod; run go generate ./internal/build")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	dst := filepath.Join(dir, fwzip.Hash(files))
	for attempt := 0; ; attempt++ {
		err := source.WriteTree(dst, "", files)
		if err == nil {
			return dst, nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return "", fmt.Errorf("build: extract framework: %w", err)
		}
		have, _, rerr := source.ReadTree(dst)
		if rerr == nil && len(fwzip.Diff(files, have)) == 0 {
			return dst, nil
		}
		if err := os.RemoveAll(dst); err != nil {
			return "", fmt.Errorf("build: replace damaged framework copy: %w", err)
		}
	}
}
