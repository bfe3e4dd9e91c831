package logstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func texts(t *testing.T, l *File, q Query) []string {
	t.Helper()
	var out []string
	if err := l.Read(context.Background(), q, func(ln Line) error { out = append(out, ln.Text); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLinesTailSince(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(filepath.Join(t.TempDir(), "c.log"), 1<<20, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fmt.Fprint(l, "one\ntwo\r\nthr")
		fmt.Fprint(l, "ee\n")
		mid := time.Now()
		time.Sleep(time.Second)
		fmt.Fprint(l, "four\nfive")
		if got := strings.Join(texts(t, l, Query{}), ","); got != "one,two,three,four" {
			t.Fatalf("all = %s", got)
		}
		l.Flush()
		if got := strings.Join(texts(t, l, Query{Tail: 2}), ","); got != "four,five" {
			t.Fatalf("tail = %s", got)
		}
		if got := strings.Join(texts(t, l, Query{Since: mid.Add(time.Millisecond)}), ","); got != "four,five" {
			t.Fatalf("since = %s", got)
		}
	})
}

func TestRotationKeepsGenerations(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "c.log"), 400, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 100 {
		fmt.Fprintf(l, "line %03d\n", i)
	}
	got := texts(t, l, Query{})
	if len(got) == 0 || got[len(got)-1] != "line 099" || len(got) >= 100 {
		t.Fatalf("kept %d lines, last %v", len(got), got[len(got)-1:])
	}
	for i := 1; i < len(got); i++ { // contiguous: nothing lost inside what is kept
		if got[i] <= got[i-1] {
			t.Fatalf("out of order at %d: %v", i, got)
		}
	}
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		total += info.Size()
	}
	if len(entries) != 3 || total > 3*400 {
		t.Fatalf("%d files, %d bytes: the cap does not hold", len(entries), total)
	}
}

func TestLongLinesAreSplit(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "c.log"), 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fmt.Fprint(l, strings.Repeat("x", maxLine*2+5)+"\n")
	got := texts(t, l, Query{})
	if len(got) != 3 || len(got[0]) != maxLine || len(got[2]) != 5 {
		t.Fatalf("got %d pieces", len(got))
	}
}

func TestFollow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(filepath.Join(t.TempDir(), "c.log"), 120, 1)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(l, "old\n")
		got := make(chan string, 100)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- l.Read(ctx, Query{Tail: 1, Follow: true}, func(ln Line) error { got <- ln.Text; return nil })
		}()
		if s := <-got; s != "old" {
			t.Fatal(s)
		}
		for i := range 20 { // crosses several rotations
			fmt.Fprintf(l, "new %02d\n", i)
			if s := <-got; s != fmt.Sprintf("new %02d", i) {
				t.Fatalf("followed %q", s)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Closing the log ends followers too.
		go func() { done <- l.Read(context.Background(), Query{Follow: true}, func(Line) error { return nil }) }()
		synctest.Wait()
		l.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestFollowAcrossUnseenRotation: lines written while the follower was not
// looking, across a rotation, are all delivered.
func TestFollowAcrossUnseenRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(filepath.Join(t.TempDir(), "c.log"), 100, 5)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var got []string
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		gate := make(chan struct{})
		go func() {
			done <- l.Read(ctx, Query{Follow: true}, func(ln Line) error {
				got = append(got, ln.Text)
				if len(got) == 1 {
					<-gate // stall while the writer rotates underneath
				}
				return nil
			})
		}()
		fmt.Fprint(l, "line 00\n")
		synctest.Wait()
		for i := 1; i < 12; i++ {
			fmt.Fprintf(l, "line %02d\n", i)
		}
		close(gate)
		synctest.Wait()
		cancel()
		<-done
		if len(got) != 12 {
			t.Fatalf("followed %d lines: %v", len(got), got)
		}
	})
}

// TestNewest: the stamp of the newest stored line, kept across a reopen
// (where a Host resumes capturing), zero for an empty log.
func TestNewest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.log")
		l, err := Open(path, 1<<20, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !l.Newest().IsZero() {
			t.Fatalf("an empty log's newest stamp: %v", l.Newest())
		}
		fmt.Fprint(l, "one\n")
		time.Sleep(time.Second)
		fmt.Fprint(l, "two\nthr")
		want := time.Now().UTC()
		time.Sleep(time.Second) // the partial line is not stored yet
		if got := l.Newest(); !got.Equal(want) {
			t.Fatalf("newest %v, want %v", got, want)
		}
		l.Close() // stores "thr", stamped now
		l, err = Open(path, 1<<20, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if got, want := l.Newest(), time.Now().UTC(); !got.Equal(want) {
			t.Fatalf("after a reopen: newest %v, want %v", got, want)
		}
	})
}
