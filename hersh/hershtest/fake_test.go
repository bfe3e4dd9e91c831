package hershtest_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// fakeTB is the testing.TB the kit reports to in these tests, so that a
// test can check what the kit says when the program under test misbehaves.
// Like testing.T, Fatalf ends the calling goroutine (runtime.Goexit). It
// implements what the kit may use; any other method panics on the nil
// embedded interface, which would show the kit using more than it should.
type fakeTB struct {
	testing.TB

	mu       sync.Mutex
	errors   []string // Errorf messages
	fatal    string   // the Fatalf message, if any
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	f.cleanups = append(f.cleanups, fn)
	f.mu.Unlock()
}

// runFake runs body as the testing package runs a test: on a goroutine of
// its own with a fake TB, then the cleanups it registered, last first,
// each on its own goroutine (so a Fatalf ends only that one). Called in a
// synctest bubble, all of it runs in the bubble.
func runFake(body func(tb testing.TB)) *fakeTB {
	f := &fakeTB{}
	run := func(fn func()) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn()
		}()
		<-done
	}
	run(func() { body(f) })
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		run(f.cleanups[i])
	}
	return f
}

// wantFatal checks that the kit stopped the test with a message holding
// every one of parts.
func (f *fakeTB) wantFatal(t *testing.T, parts ...string) {
	t.Helper()
	if f.fatal == "" {
		t.Fatalf("the kit did not stop the test; errors: %q", f.errors)
	}
	t.Logf("the kit said: %s", f.fatal)
	for _, p := range parts {
		if !strings.Contains(f.fatal, p) {
			t.Errorf("the kit's message lacks %q:\n%s", p, f.fatal)
		}
	}
}

// wantError checks that the kit reported exactly one error, holding every
// one of parts, and did not stop the test.
func (f *fakeTB) wantError(t *testing.T, parts ...string) {
	t.Helper()
	if f.fatal != "" {
		t.Fatalf("the kit stopped the test: %s", f.fatal)
	}
	if len(f.errors) != 1 {
		t.Fatalf("the kit reported %d errors, want 1: %q", len(f.errors), f.errors)
	}
	t.Logf("the kit said: %s", f.errors[0])
	for _, p := range parts {
		if !strings.Contains(f.errors[0], p) {
			t.Errorf("the kit's message lacks %q:\n%s", p, f.errors[0])
		}
	}
}

// wantPass checks that the kit reported nothing.
func (f *fakeTB) wantPass(t *testing.T) {
	t.Helper()
	if f.fatal != "" || len(f.errors) > 0 {
		t.Fatalf("the kit failed the test: fatal %q, errors %q", f.fatal, f.errors)
	}
}
