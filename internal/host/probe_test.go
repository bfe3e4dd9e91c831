package host

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestProbeDelay: the readiness probe's schedule. It starts at 1 ms and
// grows by a quarter up to 20 ms while the program is young, so a program
// that answers after T is seen Ready at most a quarter of T (and never more
// than 20 ms) late; later it backs off to every 500 ms.
func TestProbeDelay(t *testing.T) {
	for _, tc := range []struct {
		elapsed, prev, want time.Duration
	}{
		{0, 0, time.Millisecond},
		{time.Millisecond, time.Millisecond, 1250 * time.Microsecond},
		{100 * time.Millisecond, 16 * time.Millisecond, 20 * time.Millisecond},
		{time.Second, 20 * time.Millisecond, 20 * time.Millisecond},
		{probeEager, 20 * time.Millisecond, 100 * time.Millisecond},
		{3 * time.Second, 100 * time.Millisecond, 200 * time.Millisecond},
		{5 * time.Second, 400 * time.Millisecond, 500 * time.Millisecond},
		{time.Hour, 500 * time.Millisecond, 500 * time.Millisecond},
	} {
		if got := probeDelay(tc.elapsed, tc.prev); got != tc.want {
			t.Errorf("probeDelay(%v, %v) = %v, want %v", tc.elapsed, tc.prev, got, tc.want)
		}
	}
	// Walk the schedule: how late a program that becomes ready at T is seen.
	var at, delay time.Duration
	for at < probeEager {
		delay = probeDelay(at, delay)
		next := at + delay
		if late := next - at; late > 20*time.Millisecond || (at > 4*time.Millisecond && late > at/4+time.Millisecond) {
			t.Fatalf("a program ready just after %v is seen %v late", at, late)
		}
		at = next
	}
	probes := 0
	for at, delay = 0, 0; at < probeEager; at += delay {
		delay = probeDelay(at, delay)
		probes++
	}
	if probes > 120 {
		t.Fatalf("%d probes in the first %v", probes, probeEager)
	}
}

// TestProbeBudget: probes running at once share probeBudget probes a
// second: with a hundred of them each waits at least 100 ms between
// probes, whatever its own schedule says.
func TestProbeBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var asked atomic.Int64
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			asked.Add(1)
			return nil, errors.New("connection refused")
		})}
		for _, tc := range []struct {
			probing  int64
			atMostIn time.Duration // asks at most once per this, in the eager phase
		}{
			{1, 0},
			{100, 100 * time.Millisecond},
			{1000, time.Second},
		} {
			asked.Store(0)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			probeReady(ctx, client, "cid", func() int64 { return tc.probing })
			cancel()
			n := asked.Load()
			if tc.atMostIn == 0 {
				if n < 40 { // the schedule alone: about 60 in the first second
					t.Errorf("alone: %d probes in a second", n)
				}
				continue
			}
			if limit := int64(time.Second/tc.atMostIn) + 1; n > limit {
				t.Errorf("%d probing: %d probes in a second, want at most %d", tc.probing, n, limit)
			}
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
