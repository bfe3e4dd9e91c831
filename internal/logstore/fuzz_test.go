package logstore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzRead: whatever a log file holds (torn lines, lines without stamps,
// stamps out of order, overlong lines, binary), opening it and reading it
// never fails or panics; every line read is one stored in the file, later
// than Since, at most Tail of them; and the same lines come out whatever
// the reader's chunk size (the backward search crosses chunk boundaries
// in the middle of lines).
func FuzzRead(f *testing.F) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var good strings.Builder
	for i := range 5 {
		good.WriteString(t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano))
		good.WriteString(" line ")
		good.WriteString(strings.Repeat("x", i*7))
		good.WriteByte('\n')
	}
	f.Add([]byte(good.String()), []byte(""), 0, int64(0))
	f.Add([]byte(good.String()+"2026-01-01T00:00:09Z torn"), []byte(good.String()), 2, int64(2))
	f.Add([]byte("no stamp\n\n2026-01-01T00:00:01Z a\n2025-01-01T00:00:00Z older\n"), []byte{}, 1, int64(1))
	f.Add([]byte("\x00\xff\n2026-01-01T00:00:01.5Z \xfe\n"), []byte("2026-01-01T00:00:00Z old\n"), 0, int64(-1))
	f.Fuzz(func(t *testing.T, current, rotated []byte, tail int, sinceSec int64) {
		if tail < 0 || tail > 1000 {
			tail = 0
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "container.log")
		if err := os.WriteFile(path, current, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(rotated) > 0 {
			if err := os.WriteFile(path+".1", rotated, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var since time.Time
		if sinceSec >= 0 {
			since = t0.Add(time.Duration(sinceSec%100) * time.Second)
		}
		q := Query{Tail: tail, Since: since}
		read := func(chunk int) []Line {
			l, err := Open(path, 1<<20, 3)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			l.chunk = chunk
			var lines []Line
			if err := l.Read(context.Background(), q, func(ln Line) error {
				lines = append(lines, ln)
				return nil
			}); err != nil {
				t.Fatalf("Read (chunk %d): %v", chunk, err)
			}
			return lines
		}
		big := read(defaultChunk)
		small := read(7)
		if !slices.Equal(big, small) {
			t.Fatalf("chunk 7 read %d lines, chunk %d read %d:\n%q\n%q", len(small), defaultChunk, len(big), small, big)
		}
		if tail > 0 && len(big) > tail {
			t.Fatalf("%d lines for tail %d", len(big), tail)
		}
		stored := string(rotated) + "\n" + string(current) + "\n"
		for _, ln := range big {
			if !since.IsZero() && ln.Time.Before(since) {
				t.Fatalf("line %v before since %v", ln.Time, since)
			}
			if strings.ContainsRune(ln.Text, '\n') || !strings.Contains(stored, " "+ln.Text+"\n") {
				t.Fatalf("a line read that is not stored: %q", ln.Text)
			}
		}
	})
}
