package logstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"
)

const (
	// defaultChunk is how much a reader reads at a time.
	defaultChunk = 32 << 10
	// stampMax bounds the stamp and its space at the start of a stored
	// line ("2006-01-02T15:04:05.999999999Z " is 31 bytes).
	stampMax = 64
	// maxRecord bounds a stored line (stamp, space and text, without the
	// newline). The writer never stores longer ones (see maxLine); a longer
	// one in a file is corrupt and skipped, like a line without a stamp.
	maxRecord = maxLine + stampMax
)

// Query selects lines. Zero values: every line kept, no following.
type Query struct {
	Tail   int       // only the last Tail lines (0: all)
	Since  time.Time // only lines captured at or after Since
	Follow bool      // then wait for new lines until ctx is done or the file is closed
}

// Read calls emit for each selected line, oldest first. With Follow it
// returns only when ctx is done (nil) or the log is closed (nil).
//
// The memory a read holds is a few chunks and one line, whatever the
// history size, Tail or Since: the start of the selection is found by
// reading backwards from the end of the newest file, then the lines are
// read forwards from there. Stamps are in order (see Write), so the first
// line older than Since ends the backward search; in files written
// otherwise, lines at or after Since stored before an older one may be
// missed, and lines before Since are never emitted. Nothing is emitted
// before the start is found, so an error then comes before any line.
func (l *File) Read(ctx context.Context, q Query, emit func(Line) error) error {
	snap, err := l.snapshot()
	if err != nil {
		return err
	}
	defer snap.close()
	sc := newScanner(l.chunk)
	from, err := snap.start(q, sc, make([]byte, l.chunk))
	if err != nil {
		return err
	}
	// Files are closed as soon as they are done with (a slow client then
	// holds one open file, not every generation); the current one stays
	// open for a follow.
	last := len(snap.segs) - 1
	for i := range snap.segs {
		if i < from.seg {
			snap.done(i)
			continue
		}
		seg, off := snap.segs[i], int64(0)
		if i == from.seg {
			off = from.off
		}
		if err := sc.each(seg.f, off, seg.size, q.Since, emit); err != nil {
			return err
		}
		if i < last {
			snap.done(i)
		}
	}
	if !q.Follow || snap.closed {
		return nil
	}
	return l.follow(ctx, snap, q.Since, sc, emit)
}

// segment is one open file of the log, read up to size.
type segment struct {
	f    *os.File
	size int64
}

// snapshot is the log as it was at one moment: every kept file, open, so
// that rotations and deletions while it is read change nothing.
type snapshot struct {
	segs      []segment // oldest first; the last one is the current file
	wake      <-chan struct{}
	closed    bool
	rotations int
}

func (s *snapshot) close() {
	for i := range s.segs {
		s.done(i)
	}
}

// done closes the i-th file.
func (s *snapshot) done(i int) {
	if s.segs[i].f != nil {
		s.segs[i].f.Close()
		s.segs[i].f = nil
	}
}

// snapshot opens the kept files under the lock: the writer rotates under
// the same lock, so the set is consistent and the current file's size is
// where its last complete line ends.
func (l *File) snapshot() (*snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &snapshot{wake: l.changed, closed: l.closed, rotations: l.rotated}
	for g := l.keep; g >= 1; g-- {
		seg, err := openSegment(gen(l.path, g), -1)
		if err != nil {
			s.close()
			return nil, err
		}
		if seg.f != nil {
			s.segs = append(s.segs, seg)
		}
	}
	cur, err := openSegment(l.path, l.size)
	if err != nil {
		s.close()
		return nil, err
	}
	if cur.f == nil {
		if !l.closed {
			s.close()
			return nil, errors.New("logstore: " + l.path + " is missing")
		}
		s.closed = true // removed after Close (the program was deleted)
	} else {
		s.segs = append(s.segs, cur)
	}
	return s, nil
}

// openSegment opens path to be read up to size (< 0: its whole length); a
// missing file is the zero segment.
func openSegment(path string, size int64) (segment, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return segment{}, nil
	}
	if err != nil {
		return segment{}, err
	}
	if size < 0 {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return segment{}, err
		}
		size = st.Size()
	}
	return segment{f: f, size: size}, nil
}

// pos is a place in a snapshot: a byte offset in one of its files.
type pos struct {
	seg int
	off int64
}

// start finds the first selected line: the oldest of the last q.Tail lines
// (all when 0) that is not before q.Since, reading backwards from the end
// with buf (and sc, to read a file's first line).
func (s *snapshot) start(q Query, sc *scanner, buf []byte) (pos, error) {
	if q.Tail <= 0 && q.Since.IsZero() {
		return pos{}, nil
	}
	count := 0
	for i := len(s.segs) - 1; i >= 0; i-- {
		seg := s.segs[i]
		if q.Tail <= 0 {
			// Since alone: a file whose first line is not before Since is
			// selected whole, so it needs no line by line search.
			t, ok, err := sc.firstStamp(seg)
			if err != nil {
				return pos{}, err
			}
			if ok && !t.Before(q.Since) {
				continue
			}
		}
		at, found := int64(0), false
		err := scanBack(seg.f, seg.size, buf, func(start, end int64, t time.Time) bool {
			if !q.Since.IsZero() && t.Before(q.Since) {
				at, found = min(end+1, seg.size), true // the selection starts after this line
				return false
			}
			if count++; q.Tail > 0 && count == q.Tail {
				at, found = start, true // and with this one
				return false
			}
			return true
		})
		if err != nil {
			return pos{}, err
		}
		if found {
			return pos{seg: i, off: at}, nil
		}
	}
	return pos{}, nil
}

// firstStamp returns the stamp of the first valid line of seg.
func (s *scanner) firstStamp(seg segment) (time.Time, bool, error) {
	s.br.Reset(io.NewSectionReader(seg.f, 0, seg.size))
	for {
		b, ok, err := s.next()
		if err != nil || !ok {
			return time.Time{}, false, err
		}
		if t, ok := parseStamp(b); ok {
			return t, true, nil
		}
	}
}

// scanBack calls visit for each valid line of f's first size bytes, newest
// first, with the line's start, the offset of its newline (or size, for an
// unterminated last piece) and its stamp, until visit returns false. It
// reads len(buf) bytes at a time; a line longer than buf costs more reads,
// not more memory.
func scanBack(f *os.File, size int64, buf []byte, visit func(start, end int64, t time.Time) bool) error {
	var head [stampMax]byte
	var lo int64
	var data []byte
	// check looks at the line [start, end), with data holding [lo, lo+len(data)).
	check := func(start, end int64) (bool, error) {
		if end <= start || end-start > maxRecord {
			return true, nil
		}
		n := min(end-start, stampMax)
		var h []byte
		if start >= lo && start+n <= lo+int64(len(data)) {
			h = data[start-lo : start-lo+n]
		} else {
			if _, err := f.ReadAt(head[:n], start); err != nil {
				return false, err
			}
			h = head[:n]
		}
		t, ok := parseStamp(h)
		if !ok {
			return true, nil
		}
		return visit(start, end, t), nil
	}
	end := size // the end of the line being looked for
	for hi := size; hi > 0; hi = lo {
		lo = max(0, hi-int64(len(buf)))
		data = buf[:hi-lo]
		if _, err := f.ReadAt(data, lo); err != nil {
			return err
		}
		for rest := data; ; {
			i := bytes.LastIndexByte(rest, '\n')
			if i < 0 {
				break
			}
			nl := lo + int64(i)
			if more, err := check(nl+1, end); err != nil || !more {
				return err
			}
			end, rest = nl, rest[:i]
		}
	}
	_, err := check(0, end)
	return err
}

// parseStamp reads the stamp at the start of a stored line: the text up to
// the first space, which must come within stampMax bytes.
func parseStamp(b []byte) (time.Time, bool) {
	i := bytes.IndexByte(b[:min(len(b), stampMax)], ' ')
	if i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b[:i]))
	return t, err == nil
}

// scanner reads stored lines forwards in chunks, holding at most one line
// (up to maxRecord) besides its buffer.
type scanner struct {
	br   *bufio.Reader
	line []byte
}

func newScanner(chunk int) *scanner {
	return &scanner{br: bufio.NewReaderSize(nil, chunk)}
}

// each emits the valid lines of f's [from, to) not before since.
func (s *scanner) each(f *os.File, from, to int64, since time.Time, emit func(Line) error) error {
	if to <= from {
		return nil
	}
	s.br.Reset(io.NewSectionReader(f, from, to-from))
	for {
		b, ok, err := s.next()
		if err != nil || !ok {
			return err
		}
		t, valid := parseStamp(b)
		if !valid || (!since.IsZero() && t.Before(since)) {
			continue
		}
		i := bytes.IndexByte(b, ' ')
		if err := emit(Line{Time: t, Text: string(b[i+1:])}); err != nil {
			return err
		}
	}
}

// next returns the next line without its newline (valid until the next
// call), skipping lines longer than maxRecord; ok is false at the end. A
// last piece without a newline counts as a line.
func (s *scanner) next() (line []byte, ok bool, err error) {
	s.line = s.line[:0]
	long := false
	for {
		frag, err := s.br.ReadSlice('\n')
		if err == nil && len(s.line) == 0 && !long && len(frag) <= maxRecord+1 {
			return frag[:len(frag)-1], true, nil // the whole line was in the buffer
		}
		if !long && len(s.line)+len(frag) <= maxRecord+1 {
			s.line = append(s.line, frag...)
		} else {
			long, s.line = true, s.line[:0]
		}
		switch {
		case err == nil:
			if long {
				long = false // skip it, and read the next line
				continue
			}
			return s.line[:len(s.line)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			if long || len(s.line) == 0 || len(s.line) > maxRecord {
				return nil, false, nil
			}
			return s.line, true, nil
		default:
			return nil, false, err
		}
	}
}

// follow emits the lines written after snap, until ctx is done or the log
// is closed. It keeps the current file open, so a rotation (which renames
// it) loses nothing: the old file is read to its end, then the newer
// generations, then the new current file. Generations dropped by the cap
// before the follower got to them are gone for everyone.
func (l *File) follow(ctx context.Context, snap *snapshot, since time.Time, sc *scanner, emit func(Line) error) error {
	cur := snap.segs[len(snap.segs)-1]
	snap.segs = snap.segs[:len(snap.segs)-1] // cur is ours to close now
	defer func() { cur.f.Close() }()
	off, rotations, wake := cur.size, snap.rotations, snap.wake
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
		l.mu.Lock()
		size, now, closed := l.size, l.rotated, l.closed
		wake = l.changed
		var newer []segment
		var err error
		if now != rotations {
			newer, err = l.openNewer(now - rotations)
		}
		l.mu.Unlock()
		if err != nil {
			return err
		}
		if now != rotations {
			err := l.drain(cur, off, newer, since, sc, emit)
			cur.f.Close()
			for _, seg := range newer[:len(newer)-1] {
				seg.f.Close()
			}
			cur, off, rotations = newer[len(newer)-1], 0, now
			if err != nil {
				return err
			}
		}
		if size > off {
			if err := sc.each(cur.f, off, size, since, emit); err != nil {
				return err
			}
			off = size
		}
		if closed {
			return nil
		}
	}
}

// openNewer opens, after k rotations, the generations newer than the file
// a follower was reading (now path.k) and the current file, oldest first.
// Called with l.mu held, so nothing moves meanwhile.
func (l *File) openNewer(k int) ([]segment, error) {
	var out []segment
	fail := func(err error) ([]segment, error) {
		for _, seg := range out {
			seg.f.Close()
		}
		return nil, err
	}
	for g := min(k-1, l.keep); g >= 1; g-- {
		seg, err := openSegment(gen(l.path, g), -1)
		if err != nil {
			return fail(err)
		}
		if seg.f != nil {
			out = append(out, seg)
		}
	}
	cur, err := openSegment(l.path, l.size)
	if err != nil {
		return fail(err)
	}
	if cur.f == nil {
		return fail(errors.New("logstore: " + l.path + " is missing"))
	}
	return append(out, cur), nil
}

// drain emits the rest of the rotated file a follower was reading (from
// off to its end: nothing writes to it any more) and the whole of each
// newer generation.
func (l *File) drain(old segment, off int64, newer []segment, since time.Time, sc *scanner, emit func(Line) error) error {
	st, err := old.f.Stat()
	if err != nil {
		return err
	}
	if err := sc.each(old.f, off, st.Size(), since, emit); err != nil {
		return err
	}
	for _, seg := range newer[:len(newer)-1] {
		if err := sc.each(seg.f, 0, seg.size, since, emit); err != nil {
			return err
		}
	}
	return nil
}
