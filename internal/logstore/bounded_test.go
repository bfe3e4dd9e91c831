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
	"testing/synctest"
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

// reference reads the stored log the simple way (every file whole, test
// only): the lines a reader must see, oldest first.
func reference(t testing.TB, path string, keep int) []Line {
	t.Helper()
	var out []Line
	for g := keep; g >= 0; g-- {
		name := path
		if g > 0 {
			name = gen(path, g)
		}
		b, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range strings.SplitAfter(string(b), "\n") {
			s = strings.TrimSuffix(s, "\n")
			if s == "" || len(s) > maxRecord {
				continue
			}
			stamp, text, ok := strings.Cut(s, " ")
			ts, err := time.Parse(time.RFC3339Nano, stamp)
			if ok && err == nil && len(stamp) < stampMax {
				out = append(out, Line{Time: ts, Text: text})
			}
		}
	}
	return out
}

// want applies q (without Follow) to ref.
func want(ref []Line, q Query) []string {
	var sel []string
	for _, ln := range ref {
		if q.Since.IsZero() || !ln.Time.Before(q.Since) {
			sel = append(sel, ln.Text)
		}
	}
	if q.Tail > 0 && len(sel) > q.Tail {
		sel = sel[len(sel)-q.Tail:]
	}
	return sel
}

// check compares every tail (and tail with since) of l with the reference.
func check(t *testing.T, l *File, ref []Line, sinces []time.Time) {
	t.Helper()
	tails := []int{0}
	for n := 1; n <= len(ref)+2; n++ {
		tails = append(tails, n)
	}
	for _, since := range append([]time.Time{{}}, sinces...) {
		for _, n := range tails {
			q := Query{Tail: n, Since: since}
			got, exp := texts(t, l, q), want(ref, q)
			if strings.Join(got, "\n") != strings.Join(exp, "\n") {
				t.Fatalf("tail %d since %v: got %d lines, want %d\ngot  %.300q\nwant %.300q", n, since, len(got), len(exp), got, exp)
			}
		}
	}
}

// TestTailAcrossRotations: every tail, read 16 bytes at a time, across
// four files of lines of all lengths, is what the files hold.
func TestTailAcrossRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := Open(path, 600, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.chunk = 16
	for i := range 120 {
		fmt.Fprintf(l, "line %03d %s\n", i, strings.Repeat("y", (i*37)%90))
	}
	ref := reference(t, path, 3)
	if len(ref) < 20 || ref[len(ref)-1].Text[:8] != "line 119" {
		t.Fatalf("reference: %d lines", len(ref))
	}
	if _, err := os.Stat(gen(path, 3)); err != nil {
		t.Fatalf("the log did not rotate three times: %v", err)
	}
	check(t, l, ref, nil)
}

// TestLinesLongerThanAChunk: lines up to the longest the writer stores,
// read 64 bytes at a time; a longer (corrupt) line in the file is skipped
// forwards and backwards alike.
func TestLinesLongerThanAChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := Open(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	l.chunk = 64
	for i, n := range []int{0, 1, 63, 64, 65, 200, maxLine - 1, maxLine, maxLine + 1, 3*maxLine + 7, 5} {
		fmt.Fprintf(l, "%02d %s\n", i, strings.Repeat("z", n))
	}
	l.Close()
	// A foreign line longer than any stored one, then a normal one.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	fmt.Fprintf(f, "%s overlong %s\n%s after\n", stamp, strings.Repeat("o", 2*maxLine), stamp)
	f.Close()
	if l, err = Open(path, 1<<20, 1); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.chunk = 64
	ref := reference(t, path, 1)
	// Stored text is split at maxLine: 6 short lines, 2+2+2+4 pieces of
	// the long ones, one more, and "after".
	if len(ref) != 18 || ref[len(ref)-1].Text != "after" || len(ref[6].Text) != maxLine {
		t.Fatalf("reference: %d lines", len(ref))
	}
	check(t, l, ref, []time.Time{ref[3].Time})
}

// TestPartialLastLine: a pending unterminated line is not shown until it
// is flushed; a last line torn by a crash is read as it is, and ended at
// Open so the next line stays apart from it.
func TestPartialLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := Open(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	l.chunk = 16
	fmt.Fprint(l, "one\ntw")
	if got := strings.Join(texts(t, l, Query{Tail: 1}), ","); got != "one" {
		t.Fatalf("tail with a pending line = %q", got)
	}
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "%s torn", time.Now().UTC().Format(time.RFC3339Nano)) // no newline: a crash
	f.Close()
	if got := strings.Join(want(reference(t, path, 1), Query{Tail: 2}), ","); got != "tw,torn" {
		t.Fatalf("reference tail = %q", got)
	}
	if l, err = Open(path, 1<<20, 1); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.chunk = 16
	if got := strings.Join(texts(t, l, Query{Tail: 2}), ","); got != "tw,torn" {
		t.Fatalf("tail = %q", got)
	}
	fmt.Fprint(l, "three\n")
	if got := strings.Join(texts(t, l, Query{}), ","); got != "one,tw,torn,three" {
		t.Fatalf("after the next write: %q", got)
	}
}

// TestSinceWithinAndBetweenFiles: since at every line's stamp, between
// lines, before and after everything, with and without tail, across five
// files read 32 bytes at a time.
func TestSinceWithinAndBetweenFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	n := history(t, path, 4, 500, 40, t0, time.Second)
	l, err := Open(path, 500, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.chunk = 32
	ref := reference(t, path, 4)
	if len(ref) != n {
		t.Fatalf("reference %d lines, wrote %d", len(ref), n)
	}
	sinces := []time.Time{t0.Add(-time.Hour), t0.Add(time.Duration(n) * time.Second)}
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		sinces = append(sinces, at, at.Add(time.Millisecond))
	}
	for _, since := range sinces {
		for _, tail := range []int{0, 1, 2, 7, n + 1} {
			q := Query{Tail: tail, Since: since}
			if got, exp := texts(t, l, q), want(ref, q); strings.Join(got, "\n") != strings.Join(exp, "\n") {
				t.Fatalf("since %v tail %d: got %q, want %q", since, tail, got, exp)
			}
		}
	}
}

// TestStampsNeverGoBack: a stored stamp later than the clock (the clock
// was stepped back) is the floor of the next stamps, so since still finds
// every line after it.
func TestStampsNeverGoBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	future := time.Now().UTC().Add(time.Hour)
	os.WriteFile(path, []byte(future.Format(time.RFC3339Nano)+" from the future\n"), 0o600)
	l, err := Open(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fmt.Fprint(l, "now\n")
	var stamps []time.Time
	l.Read(context.Background(), Query{Since: future}, func(ln Line) error { stamps = append(stamps, ln.Time); return nil })
	if len(stamps) != 2 || !stamps[1].Equal(future) {
		t.Fatalf("lines since the future stamp: %v", stamps)
	}
}

// TestFollowAcrossRotationsInChunks: a follower reading 16 bytes at a time
// gets every line of bursts larger than its chunk and than a file, in
// order, across rotations, whether it keeps up or stalls for longer than
// the kept generations last (then it finishes its own file and reads what
// is kept, skipping only what the cap dropped).
func TestFollowAcrossRotationsInChunks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(filepath.Join(t.TempDir(), "c.log"), 200, 2)
		if err != nil {
			t.Fatal(err)
		}
		l.chunk = 16
		var got []int
		gate := make(chan struct{})
		done := make(chan error)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			done <- l.Read(ctx, Query{Follow: true}, func(ln Line) error {
				var i int
				fmt.Sscanf(ln.Text, "line %d", &i)
				got = append(got, i)
				if i == 10 {
					<-gate
				}
				return nil
			})
		}()
		synctest.Wait()
		var burst strings.Builder
		for i := range 11 { // about 300 bytes: more than a file
			fmt.Fprintf(&burst, "line %03d\n", i)
		}
		fmt.Fprint(l, burst.String())
		synctest.Wait() // the follower holds line 10 while the writer goes on
		for i := 11; i < 80; i++ {
			fmt.Fprintf(l, "line %03d\n", i)
		}
		close(gate)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		l.Close()
		for i := range 11 {
			if i >= len(got) || got[i] != i {
				t.Fatalf("the burst: %v", got)
			}
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("out of order or repeated at %d: %v", i, got)
			}
		}
		if got[len(got)-1] != 79 {
			t.Fatalf("the last line was not followed: %v", got)
		}
	})
}

// TestReadsWhileRotating: readers taking tails and since while the writer
// rotates underneath always see lines in order, without repeats, ending at
// a line that was written (run with -race).
func TestReadsWhileRotating(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := Open(path, 300, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.chunk = 16
	stop := make(chan struct{})
	wrote := make(chan int)
	go func() {
		i := 0
		for ; ; i++ {
			select {
			case <-stop:
				wrote <- i
				return
			default:
			}
			fmt.Fprintf(l, "line %05d\n", i)
		}
	}()
	for r := range 300 {
		q := Query{Tail: 1 + r%20}
		if r%3 == 0 {
			q = Query{Since: time.Now().Add(-time.Millisecond)}
		}
		last := -1
		err := l.Read(context.Background(), q, func(ln Line) error {
			var i int
			fmt.Sscanf(ln.Text, "line %d", &i)
			if i <= last {
				return fmt.Errorf("line %d after %d", i, last)
			}
			last = i
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-wrote
}

// openFiles counts the process's open descriptors (Linux).
func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// TestReadsCloseTheirFiles: reads and follows (ended by their context, by
// an emit error, or by Close across rotations) leave no file open.
func TestReadsCloseTheirFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := Open(path, 200, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		fmt.Fprintf(l, "line %03d\n", i)
	}
	before := openFiles(t)
	for _, q := range []Query{{}, {Tail: 1}, {Tail: 30}, {Since: time.Now().Add(-time.Hour)}} {
		texts(t, l, q)
		stop := fmt.Errorf("enough")
		if err := l.Read(context.Background(), q, func(Line) error { return stop }); err != stop {
			t.Fatalf("emit error: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	got := make(chan string, 100)
	go func() {
		done <- l.Read(ctx, Query{Tail: 1, Follow: true}, func(ln Line) error { got <- ln.Text; return nil })
	}()
	<-got
	for i := 50; i < 80; i++ { // rotates under the follower
		fmt.Fprintf(l, "line %03d\n", i)
		if s := <-got; s != fmt.Sprintf("line %03d", i) {
			t.Fatalf("followed %q", s)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := openFiles(t); after != before {
		t.Errorf("%d files open before the reads, %d after", before, after)
	}
	go func() { done <- l.Read(context.Background(), Query{Follow: true}, func(Line) error { return nil }) }()
	fmt.Fprint(l, "last\n")
	l.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := openFiles(t); after != before-1 { // the writer's own file is closed too
		t.Errorf("%d files open before, %d after Close", before, after)
	}
}
