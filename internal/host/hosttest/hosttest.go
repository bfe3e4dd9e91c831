// Package hosttest opens Hosts for tests: one place for the settings tests
// want (short timeouts and backoff), for the test programs (their sources
// in testdata/, and the fake engine's stand-ins for their binaries), and
// for closing a Host when its test ends.
//
// Most tests open a Host on the in-memory engine (OpenFake, NewFake: package
// fake), in or out of a testing/synctest bubble: the Host runs unchanged,
// Go-source builds included (gobuild.go), and nothing needs Docker. Tests
// whose subject is the engine or the sandbox open one on the real engine
// (Open, with testenv.Engine): those live in package enginetest, the
// end-to-end suite and the Docker driver's tests.
//
// The Host's own tests use this package from package host_test; what they
// need of the Host's insides is exported to them by export_test.go.
package hosttest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/testenv"
)

// Options are the test settings of a Host on dir with runtime rt, on the
// real engine: the machine's shared build cache (testenv.GoCaches).
func Options(t testing.TB, dir, rt string) host.Options {
	return host.Options{
		DataDir: dir, Runtime: rt, StartTimeout: 60 * time.Second, StopGrace: 5 * time.Second,
		Backoff: lifecycle.Backoff{Base: time.Second, Max: 4 * time.Second, HealthyReset: time.Hour},
		Build:   testenv.GoCaches(t),
	}
}

// Open opens a Host on d with the test settings, changed by more, and
// closes it when the test ends unless Close closed it first (registered
// first, so it runs after the test's later cleanups, which may still use
// the Host).
func Open(t testing.TB, dir, rt string, d driver.Driver, more ...func(*host.Options)) *host.Host {
	t.Helper()
	o := Options(t, dir, rt)
	for _, f := range more {
		f(&o)
	}
	return open(t, o, d)
}

// closed holds the Hosts a test closed itself (Close).
var closed sync.Map

func open(t testing.TB, o host.Options, d driver.Driver) *host.Host {
	t.Helper()
	h, err := host.Open(context.Background(), o, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, done := closed.LoadAndDelete(h); done {
			return
		}
		if err := h.Close(); err != nil {
			t.Errorf("closing the Host: %v", err)
		}
	})
	return h
}

// Close closes a Host that Open or Fake.Open opened, before its test ends
// (to open another on the same data directory).
func Close(t testing.TB, h *host.Host) {
	t.Helper()
	closed.Store(h, true)
	if err := h.Close(); err != nil {
		t.Fatalf("closing the Host: %v", err)
	}
}
