package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

const logID = "build-0123456789ab"

func newTestLogs(t *testing.T) *Logs {
	t.Helper()
	l, err := NewLogs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLogsFollow(t *testing.T) {
	l := newTestLogs(t)
	w, err := l.Create(logID)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "line 0")

	r, err := l.Open(context.Background(), logID, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan string)
	go func() {
		b, err := io.ReadAll(r) // returns once the build is over
		if err != nil {
			b = append(b, "ERROR: "+err.Error()...)
		}
		got <- string(b)
	}()

	var want strings.Builder
	want.WriteString("line 0\n")
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(w, "line %d\n", i)
		fmt.Fprintf(&want, "line %d\n", i)
		if i%10 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	select {
	case s := <-got:
		t.Fatalf("the follower stopped before the build finished: %q", s)
	case <-time.After(50 * time.Millisecond):
	}
	if !l.Writing(logID) {
		t.Fatal("Writing = false while a writer is open")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != want.String() {
			t.Fatalf("follower read %q, want %q", s, want.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follower did not end when the build finished")
	}
	if l.Writing(logID) {
		t.Fatal("Writing = true after the writer closed")
	}
	if _, err := w.Write([]byte("late")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}

	// A finished log reads to EOF at once, with or without follow.
	for _, follow := range []bool{false, true} {
		r, err := l.Open(context.Background(), logID, follow)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(b) != want.String() {
			t.Fatalf("follow=%v: %q, %v", follow, b, err)
		}
	}
}

func TestLogsNoFollowStopsAtEnd(t *testing.T) {
	l := newTestLogs(t)
	w, err := l.Create(logID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	io.WriteString(w, "so far")
	r, err := l.Open(context.Background(), logID, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || string(b) != "so far" {
		t.Fatalf("%q, %v", b, err)
	}
}

func TestLogsFollowEndsWithContextOrClose(t *testing.T) {
	l := newTestLogs(t)
	w, err := l.Create(logID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	ctx, cancel := context.WithCancel(context.Background())
	r, err := l.Open(ctx, logID, true)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { _, err := io.ReadAll(r); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
	r.Close()

	r, err = l.Open(context.Background(), logID, true)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, err := io.ReadAll(r); done <- err }()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ReadAll of a closed follower returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock the follower")
	}
}

func TestLogsSharedAndReplaced(t *testing.T) {
	l := newTestLogs(t)
	w1, err := l.Create(logID)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := l.Create(logID) // the same source built for another program
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w1, "one\n")
	io.WriteString(w2, "two\n")
	w1.Close()
	if !l.Writing(logID) {
		t.Fatal("log finished with a writer still open")
	}
	if err := l.Remove(logID); err == nil {
		t.Fatal("Remove of a log being written succeeded")
	}
	w2.Close()
	if l.Writing(logID) {
		t.Fatal("log still being written after every writer closed")
	}

	old, err := l.Open(context.Background(), logID, false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	// A new build of the same id starts a fresh log; the old reader keeps
	// the old one.
	w3, err := l.Create(logID)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w3, "three\n")
	w3.Close()
	if b, _ := io.ReadAll(old); string(b) != "one\ntwo\n" {
		t.Fatalf("old reader read %q", b)
	}
	r, _ := l.Open(context.Background(), logID, true)
	if b, _ := io.ReadAll(r); string(b) != "three\n" {
		t.Fatalf("new log holds %q", b)
	}
	r.Close()

	if err := l.Remove(logID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(context.Background(), logID, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after Remove = %v", err)
	}
}

func TestLogsRefuseBadIDs(t *testing.T) {
	l := newTestLogs(t)
	for _, id := range []string{"", "../x", "build-0123456789ab/../../x", "BUILD-0123456789ab"} {
		if _, err := l.Create(id); err == nil {
			t.Errorf("Create(%q) succeeded", id)
		}
		if _, err := l.Open(context.Background(), id, false); err == nil {
			t.Errorf("Open(%q) succeeded", id)
		}
	}
}

func TestLogsConcurrentWriters(t *testing.T) {
	l := newTestLogs(t)
	w, err := l.Create(logID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Open(context.Background(), logID, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(w, "writer %d line %d\n", i, j)
			}
		})
	}
	var got bytes.Buffer
	readDone := make(chan struct{})
	go func() { io.Copy(&got, r); close(readDone) }()
	wg.Wait()
	w.Close()
	<-readDone
	if n := strings.Count(got.String(), "\n"); n != 800 {
		t.Fatalf("follower read %d lines, want 800", n)
	}
}

// The Builder writes through a LogWriter like any io.Writer.
func TestBuildWritesLog(t *testing.T) {
	b, _ := newTestBuilder(t, Options{})
	req := storeSource(t, "FROM scratch\n", map[string]string{"a": "b"})
	w, err := b.Logs().Create(req.BuildID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(context.Background(), req, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path, _ := b.Logs().Path(req.BuildID)
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "Successfully built") {
		t.Fatalf("log file %s: %q, %v", path, data, err)
	}
}
