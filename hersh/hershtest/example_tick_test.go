package hershtest_test

// Pattern: a ticking strategy. The bot buys $100 of BTC every hour
// (WatchTick) at the price it polls every minute (WatchCall), and stops
// buying above a limit that arrives on a channel (WatchFlow). The test
// controls the price with a hershtest.Value, the limit with Feed, and time
// with Advance: hours pass in microseconds, and every run is accounted for.

import (
	"context"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

var btcHeld = hersh.NewKey[float64]("btc")

// dca returns the managed function, reading the price with poll and the
// buying limit from limits.
func dca(poll func(context.Context, float64) (float64, bool, error), limits <-chan float64) hersh.ManagedFunc {
	return func(c *hersh.Context) error {
		price, havePrice := hersh.WatchCall(c, "price", time.Minute, poll)
		limit, haveLimit := hersh.WatchFlow(c, "limit", limits)
		hersh.WatchTick(c, "hourly", time.Hour)
		if !c.Changed("hourly") || !havePrice || (haveLimit && price > limit) {
			return nil
		}
		_, err := btcHeld.Update(c, func(n float64) (float64, error) { return n + 100/price, nil })
		return err
	}
}

func TestTickingStrategy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var price hershtest.Value[float64]
		price.Set(50_000)
		limits := make(chan float64) // made inside the bubble, like everything the watcher blocks on
		h := hershtest.Start(t, hersh.Config{}, dca(price.Poll, limits))

		// Start registered the watches; the price was polled at once.
		if got, want := hershtest.Triggers(h.Runs()), []string{"start", "vars:price"}; !slices.Equal(got, want) {
			t.Fatalf("runs after start: %q, want %q", got, want)
		}

		// An hour: 60 polls of an unchanged price cause no run, the tick one.
		runs := h.Advance(time.Hour)
		if got, want := hershtest.Triggers(runs), []string{"vars:hourly"}; !slices.Equal(got, want) {
			t.Errorf("first hour: %q, want %q", got, want)
		}
		wantHeld(t, h, 100.0/50_000)

		// The price drops; the next poll sees it, the next tick buys at it.
		price.Set(40_000)
		runs = h.Advance(time.Hour)
		if got, want := hershtest.Triggers(runs), []string{"vars:price", "vars:hourly"}; !slices.Equal(got, want) {
			t.Errorf("second hour: %q, want %q", got, want)
		}
		wantHeld(t, h, 100.0/50_000+100.0/40_000)

		// A limit below the price: the third tick buys nothing.
		hershtest.Feed(h, limits, 30_000)
		h.Advance(time.Hour)
		wantHeld(t, h, 100.0/50_000+100.0/40_000)
		if tick, _ := hershtest.Var[hersh.Tick](h, "hourly"); tick.Count != 3 {
			t.Errorf("tick count %d, want 3", tick.Count)
		}
		if price.Polls() != 181 {
			t.Errorf("%d polls in 3 hours, want 181", price.Polls())
		}
	})
}

func wantHeld(t *testing.T, h *hershtest.Watcher, want float64) {
	t.Helper()
	if got, _ := btcHeld.Get(h.W); math.Abs(got-want) > 1e-12 {
		t.Errorf("holding %.6f BTC, want %.6f", got, want)
	}
}
