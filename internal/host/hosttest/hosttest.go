// Package hosttest opens Hosts for the tests of the packages above the
// Host (the API, the CLI): one place for the settings tests want (short
// timeouts and backoff, the machine's shared build cache), and for closing
// the Host when the test ends. The Host's own tests, inside package host,
// have the same helper there (they cannot import this package).
package hosttest

import (
	"context"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/testenv"
)

// Options are the test settings of a Host on dir with runtime rt.
func Options(t testing.TB, dir, rt string) host.Options {
	return host.Options{
		DataDir: dir, Runtime: rt, StartTimeout: 60 * time.Second, StopGrace: 5 * time.Second,
		Backoff: lifecycle.Backoff{Base: time.Second, Max: 4 * time.Second, HealthyReset: time.Hour},
		Build:   testenv.GoCaches(t),
	}
}

// Open opens a Host on d with the test settings, changed by more, and
// closes it when the test ends (registered first, so it runs after the
// test's later cleanups, which may still use the Host).
func Open(t testing.TB, dir, rt string, d driver.Driver, more ...func(*host.Options)) *host.Host {
	t.Helper()
	o := Options(t, dir, rt)
	for _, f := range more {
		f(&o)
	}
	h, err := host.Open(context.Background(), o, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing the Host: %v", err)
		}
	})
	return h
}
