package docker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// frameReader reads the engine's multiplexed output stream of a container
// without a terminal: frames of an 8-byte header (the stream: 0 stdin, 1
// stdout, 2 stderr, 3 the engine's own error; three zero bytes; the
// payload's length, big-endian) each followed by its payload. It hands the
// stdout and stderr payloads straight to the caller's buffer. The Host
// follows every running container's output for as long as it runs, so a
// goroutine, a pipe and a 32 KiB copy buffer per stream (stdcopy's way)
// were most of a Host's memory with 1,000 programs.
type frameReader struct {
	body io.ReadCloser
	hdr  [8]byte
	left int   // bytes of the current frame's payload not read yet
	err  error // sticky: the stream's end or failure
}

// maxEngineError caps what is kept of an error frame from the engine.
const maxEngineError = 64 << 10

func (r *frameReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for r.left == 0 {
		if _, err := io.ReadFull(r.body, r.hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = errors.New("docker: output stream cut inside a frame header")
			}
			r.err = err // io.EOF: the stream ended between frames
			return 0, r.err
		}
		n := int64(binary.BigEndian.Uint32(r.hdr[4:]))
		switch r.hdr[0] {
		case 0, 1, 2:
			r.left = int(n)
		case 3:
			msg, _ := io.ReadAll(io.LimitReader(r.body, min(n, maxEngineError)))
			r.err = fmt.Errorf("docker: output stream: the engine reported: %q", msg)
			return 0, r.err
		default:
			r.err = fmt.Errorf("docker: output stream: unknown frame type %d", r.hdr[0])
			return 0, r.err
		}
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n, err := r.body.Read(p)
	r.left -= n
	switch {
	case err == io.EOF && r.left > 0:
		r.err = errors.New("docker: output stream cut inside a frame")
	case err != nil && err != io.EOF:
		r.err = err
	}
	if n > 0 {
		return n, nil // a failure is reported by the next Read
	}
	if r.err == nil && err == io.EOF {
		r.err = io.EOF
	}
	return 0, r.err
}

// Close ends the stream: closing the engine's response unblocks a Read
// waiting on a followed container.
func (r *frameReader) Close() error { return r.body.Close() }
