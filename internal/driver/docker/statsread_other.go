//go:build !linux

package docker

import (
	"fmt"
	"io"
	"os"
)

// readFile reads a small file into buf (a file longer than buf is an
// error). Elsewhere than Linux there are no cgroup files: Stats asks the
// engine.
func readFile(name string, buf []byte) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("%s: larger than %d bytes", name, len(buf))
}
