// Package logstore keeps a program's container output on disk: one file
// per program, each line stamped with the time it was captured, rotated at a
// size cap so a chatty program cannot fill the disk. Readers ask for the
// last N lines, the lines since a time, and can follow new lines as they
// are written (tail -f), in-process, without polling.
//
// Reads cost memory bounded by a chunk and the longest line, never by the
// history's size: a tail is found by reading backwards from the end of the
// newest file (into older generations only as far as it needs), since is
// found the same way (stamps never go backwards, see Write), and the
// selected lines are then streamed forward chunk by chunk.
package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Line is one captured line.
type Line struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// File is an append-only, rotated, line-stamped log. Safe for concurrent use.
type File struct {
	path     string
	maxBytes int64 // rotate when the current file would exceed this
	keep     int   // rotated generations kept: path.1 .. path.keep

	mu      sync.Mutex
	f       *os.File
	size    int64
	partial []byte        // an unterminated line waiting for its end
	rotated int           // rotations so far (followers notice missed ones)
	changed chan struct{} // closed and replaced on every write (wakes followers)
	closed  bool
	last    time.Time // the newest stamp written; no line is stamped before it

	chunk int // bytes a reader reads at a time (tests make it small)
}

// Open opens (creating) the log at path. A last line torn by a crash is
// ended, so the next line starts afresh, and the newest stored stamp is
// remembered, so stamps keep going forward across Host restarts.
func Open(path string, maxBytes int64, keep int) (*File, error) {
	if maxBytes <= 0 || keep < 0 {
		return nil, fmt.Errorf("logstore: invalid limits %d/%d", maxBytes, keep)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	l := &File{path: path, maxBytes: maxBytes, keep: keep, f: f, changed: make(chan struct{}), chunk: defaultChunk}
	if err := l.restore(); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// restore sets size and last from what is stored, ending a torn last line.
func (l *File) restore() error {
	st, err := l.f.Stat()
	if err != nil {
		return err
	}
	l.size = st.Size()
	r, err := os.Open(l.path)
	if err != nil {
		return err
	}
	defer r.Close()
	if l.size > 0 {
		var b [1]byte
		if _, err := r.ReadAt(b[:], l.size-1); err != nil {
			return err
		}
		if b[0] != '\n' {
			n, err := l.f.Write([]byte{'\n'})
			l.size += int64(n)
			if err != nil {
				return err
			}
		}
	}
	buf := make([]byte, 4<<10)
	newest := func(f *os.File, size int64) error {
		return scanBack(f, size, buf, func(_, _ int64, t time.Time) bool {
			l.last = t
			return false
		})
	}
	if err := newest(r, l.size); err != nil || !l.last.IsZero() {
		return err
	}
	// The current file holds no line yet: the newest is in a generation.
	for g := 1; g <= l.keep && l.last.IsZero(); g++ {
		f, err := os.Open(gen(l.path, g))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err == nil {
			err = newest(f, st.Size())
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// maxLine bounds one stored line; longer output is split.
const maxLine = 16 << 10

// Write stores p, stamping each complete line with the current time. The
// time is taken under the lock and never goes backwards (a clock stepped
// back stamps lines with the newest stamp until it catches up), so stored
// stamps are in order and readers can find since by reading backwards.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	now := l.now()
	n := len(p)
	var buf bytes.Buffer
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			if len(l.partial) >= maxLine {
				writeLine(&buf, now, l.partial[:maxLine])
				l.partial = append(l.partial[:0], l.partial[maxLine:]...)
			}
			break
		}
		line := p[:i]
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = l.partial[:0]
		}
		for len(line) > maxLine {
			writeLine(&buf, now, line[:maxLine])
			line = line[maxLine:]
		}
		writeLine(&buf, now, line)
		p = p[i+1:]
	}
	if buf.Len() > 0 {
		if err := l.append(buf.Bytes()); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// now is the stamp of lines written now: the clock, or the newest stamp
// if the clock went back. Called with l.mu held.
func (l *File) now() time.Time {
	if t := time.Now().UTC(); t.After(l.last) {
		l.last = t
	}
	return l.last
}

func writeLine(buf *bytes.Buffer, t time.Time, text []byte) {
	buf.WriteString(t.Format(time.RFC3339Nano))
	buf.WriteByte(' ')
	buf.Write(bytes.TrimSuffix(text, []byte{'\r'}))
	buf.WriteByte('\n')
}

func (l *File) append(b []byte) error {
	if l.size > 0 && l.size+int64(len(b)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	close(l.changed)
	l.changed = make(chan struct{})
	return err
}

// rotate shifts path -> path.1 -> ... -> path.keep (dropping the oldest).
func (l *File) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	if l.keep == 0 {
		os.Remove(l.path)
	} else {
		os.Remove(gen(l.path, l.keep))
		for i := l.keep - 1; i >= 1; i-- {
			os.Rename(gen(l.path, i), gen(l.path, i+1))
		}
		if err := os.Rename(l.path, gen(l.path, 1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	l.rotated++
	return nil
}

func gen(path string, i int) string { return fmt.Sprintf("%s.%d", path, i) }

// Newest is the stamp of the newest stored line (zero when none is): the
// time, on the clock that stamps lines, up to which the log holds what was
// written to it. Capture resumes just after it.
func (l *File) Newest() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Flush stores a pending unterminated line (when a stream ends).
func (l *File) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) == 0 || l.closed {
		return nil
	}
	var buf bytes.Buffer
	writeLine(&buf, l.now(), l.partial)
	l.partial = l.partial[:0]
	return l.append(buf.Bytes())
}

// Close flushes and closes the file; followers end.
func (l *File) Close() error {
	l.Flush()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.changed)
	return l.f.Close()
}
