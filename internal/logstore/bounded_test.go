package logstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// history writes a stored log of gens rotated generations plus the current
// file, each about perFile bytes, directly (as the writer would have left
// them): line i is "line <i>" padded to about width bytes, stamped t0+i*step.
// It returns the number of lines written.
func history(t testing.TB, path string, gens int, perFile int64, width int, t0 time.Time, step time.Duration) int {
	t.Helper()
	pad := strings.Repeat("x", max(width-len("line 0000000 "), 0))
	i := 0
	for g := gens; g >= 0; g-- {
		name := path
		if g > 0 {
			name = gen(path, g)
		}
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		var n int64
		for n < perFile {
			k, _ := fmt.Fprintf(w, "%s line %07d %s\n", t0.Add(time.Duration(i)*step).UTC().Format(time.RFC3339Nano), i, pad)
			n += int64(k)
			i++
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return i
}

// allocated runs fn and returns the bytes the process allocated meanwhile.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestTailOfBigHistoryAllocatesLittle is the attack of issue 9 item 3 on
// one reader: the last line of a 32 MiB history (four 8 MiB files, as the
// Host keeps them by default) must not cost the history's size in memory.
func TestTailOfBigHistoryAllocatesLittle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "container.log")
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	n := history(t, path, 3, 8<<20, 100, t0, time.Millisecond)
	l, err := Open(path, 8<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const bound = 256 << 10
	for _, c := range []struct {
		name string
		q    Query
		want []string
	}{
		{"tail=1", Query{Tail: 1}, []string{fmt.Sprintf("line %07d", n-1)}},
		{"tail=3", Query{Tail: 3}, []string{fmt.Sprintf("line %07d", n-3), fmt.Sprintf("line %07d", n-2), fmt.Sprintf("line %07d", n-1)}},
		{"since the last line", Query{Since: t0.Add(time.Duration(n-1) * time.Millisecond)}, []string{fmt.Sprintf("line %07d", n-1)}},
	} {
		var got []string
		bytes := allocated(func() {
			err = l.Read(context.Background(), c.q, func(ln Line) error {
				got = append(got, ln.Text[:len("line 0000000")])
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
		t.Logf("%s over a %d-line, 32 MiB history: %d bytes allocated", c.name, n, bytes)
		if bytes > bound {
			t.Errorf("%s allocated %d bytes (bound %d): the read is not bounded by what it returns", c.name, bytes, bound)
		}
	}
}
