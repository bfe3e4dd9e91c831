// Package logstore keeps a program's container output on disk: one file
// per program, each line stamped with the time it was captured, rotated at a
// size cap so a chatty program cannot fill the disk. Readers ask for the
// last N lines, the lines since a time, and can follow new lines as they
// are written (tail -f), in-process, without polling.
package logstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
}

// Open opens (creating) the log at path.
func Open(path string, maxBytes int64, keep int) (*File, error) {
	if maxBytes <= 0 || keep < 0 {
		return nil, fmt.Errorf("logstore: invalid limits %d/%d", maxBytes, keep)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{path: path, maxBytes: maxBytes, keep: keep, f: f, size: st.Size(), changed: make(chan struct{})}, nil
}

// maxLine bounds one stored line; longer output is split.
const maxLine = 16 << 10

// Write stores p, stamping each complete line with the current time.
func (l *File) Write(p []byte) (int, error) {
	now := time.Now().UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
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

// Flush stores a pending unterminated line (when a stream ends).
func (l *File) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) == 0 || l.closed {
		return nil
	}
	var buf bytes.Buffer
	writeLine(&buf, time.Now().UTC(), l.partial)
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

// Query selects lines. Zero values: every line kept, no following.
type Query struct {
	Tail   int       // only the last Tail lines (0: all)
	Since  time.Time // only lines captured at or after Since
	Follow bool      // then wait for new lines until ctx is done or the file is closed
}

// Read calls emit for each selected line, oldest first. With Follow it
// returns only when ctx is done (nil) or the log is closed (nil).
func (l *File) Read(ctx context.Context, q Query, emit func(Line) error) error {
	l.mu.Lock()
	size, wake, closed, rotations := l.size, l.changed, l.closed, l.rotated
	l.mu.Unlock()

	lines, err := l.history(size)
	if err != nil {
		return err
	}
	var sel []Line
	for _, ln := range lines {
		if q.Since.IsZero() || !ln.Time.Before(q.Since) {
			sel = append(sel, ln)
		}
	}
	if q.Tail > 0 && len(sel) > q.Tail {
		sel = sel[len(sel)-q.Tail:]
	}
	for _, ln := range sel {
		if err := emit(ln); err != nil {
			return err
		}
	}
	if !q.Follow || closed {
		return nil
	}
	// Follow: read what the current file gains past offset size. A rotation
	// restarts the offset at 0.
	offset := size
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
		l.mu.Lock()
		newSize, now := l.size, l.rotated
		wake, closed = l.changed, l.closed
		l.mu.Unlock()
		if now != rotations {
			// The file we were reading has moved to path.k (k rotations
			// since): finish it from our offset, read the newer generations
			// whole, then the new current file from 0. Generations already
			// dropped by the cap are gone for everyone.
			k := now - rotations
			for g := min(k, l.keep); g >= 1; g-- {
				from := int64(0)
				if g == k {
					from = offset
				}
				if rest, err := readRange(gen(l.path, g), from, -1); err == nil {
					for _, ln := range parse(rest) {
						if err := emit(ln); err != nil {
							return err
						}
					}
				}
			}
			rotations, offset = now, 0
		}
		if newSize > offset {
			chunk, err := readRange(l.path, offset, newSize)
			if err != nil {
				return err
			}
			offset = newSize
			for _, ln := range parse(chunk) {
				if err := emit(ln); err != nil {
					return err
				}
			}
		}
		if closed {
			return nil
		}
	}
}

// history reads every kept generation, oldest first, up to size bytes of
// the current file.
func (l *File) history(size int64) ([]Line, error) {
	var out []Line
	for i := l.keep; i >= 1; i-- {
		b, err := os.ReadFile(gen(l.path, i))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, parse(b)...)
	}
	b, err := readRange(l.path, 0, size)
	if err != nil {
		return nil, err
	}
	return append(out, parse(b)...), nil
}

// readRange reads [from, to) of path; to < 0 means to the end.
func readRange(path string, from, to int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if to < 0 {
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		to = st.Size()
	}
	if to <= from {
		return nil, nil
	}
	b := make([]byte, to-from)
	n, err := f.ReadAt(b, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

func parse(b []byte) []Line {
	var out []Line
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 2*maxLine)
	for sc.Scan() {
		stamp, text, ok := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, stamp)
		if !ok || err != nil {
			continue // a torn line from a crash: skip it
		}
		out = append(out, Line{Time: t, Text: text})
	}
	return out
}
