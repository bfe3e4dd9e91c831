//go:build linux

package docker

import (
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// readFile reads a small file into buf: an open, reads until the end and
// a close, and nothing else (os.Open would also try to register the file
// with the runtime's poller and allocate a File: a third of the cost of a
// cgroup file's read). The kernel's files produce their text at once; a
// file longer than buf is an error.
func readFile(name string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
	return nil, fmt.Errorf("%s: larger than %d bytes", name, len(buf))
}
