package builder

import (
	"io"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/driver/imagetar"
)

// What the Host does, for a tool that does the same by hand to compare
// (hershy bench's baseline builds a program with the go command on the
// machine and imports its image itself).

// ExtractFramework writes the framework source programs are built with
// into a folder under dir and returns that folder, for a go.mod replace.
func ExtractFramework(dir string) (string, error) { return extractFramework(dir) }

// ProgramImage is the image the Host makes of a Go program's binary (size
// bytes read from bin): the settings and the files of its one layer, for
// driver.Driver.ImportImage through imagetar.WriteLayer.
func ProgramImage(tag string, bin io.Reader, size int64, caCerts []byte) (driver.ImportSpec, []imagetar.File) {
	return goImage(tag, nil, bin, size, caCerts)
}
