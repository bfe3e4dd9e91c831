package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

var testOpts = Options{FeedInterval: time.Second, RebalanceInterval: 10 * time.Minute, StatsInterval: time.Minute, Seed: 42}

// runFor drives one trader on fake time for d and returns its trades.
func runFor(t *testing.T, dir string, d time.Duration) []Trade {
	var trades []Trade
	synctest.Test(t, func(t *testing.T) {
		w := start(t, dir)
		w.Advance(d)
		trades, _ = tradesKey.Get(w.W)
		w.Stop()
	})
	return trades
}

func TestTradesDeterministic(t *testing.T) {
	hershtest.CaptureLog(t)
	a := runFor(t, t.TempDir(), 15*time.Minute)
	b := runFor(t, t.TempDir(), 15*time.Minute)
	if len(a) == 0 {
		t.Fatal("no trades in 15 simulated minutes")
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two runs traded differently:\n%v\n%v", a, b)
	}
	rebalanced := false
	for _, tr := range a {
		rebalanced = rebalanced || tr.Reason == "rebalance"
	}
	if !rebalanced {
		t.Error("no rebalance trade after 15 minutes with a 10 minute interval")
	}
}

func TestPauseResumePersistAndConsistency(t *testing.T) {
	out := hershtest.CaptureLog(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		w := start(t, dir)
		w.Advance(5 * time.Minute)
		before := tradeCount(w)
		if before == 0 {
			t.Fatal("no trades before pause")
		}
		w.Send("pause")
		w.Advance(20 * time.Minute) // includes two rebalance ticks
		if n := tradeCount(w); n != before {
			t.Fatalf("paused trader traded: %d -> %d", before, n)
		}
		w.Send("resume")
		w.Advance(10 * time.Minute)
		if n := tradeCount(w); n <= before {
			t.Fatalf("resumed trader did not trade: %d -> %d", before, n)
		}
		for _, cmd := range []string{"help", "status", "stats", "detailed", "portfolio", "trades", "trades20", "trades50", "rebalance", "prices", "bogus"} {
			if r := w.Send(cmd); !r.Success {
				t.Errorf("%s: %s", cmd, r.Error)
			}
		}
		p, _ := portfolioKey.Get(w.W)
		trades, _ := tradesKey.Get(w.W)
		checkConsistent(t, p, trades)
		w.Stop()

		// A second watcher on the same directory restores everything.
		w = start(t, dir)
		p2, _ := portfolioKey.Get(w.W)
		trades2, _ := tradesKey.Get(w.W)
		w.Stop()
		if !reflect.DeepEqual(p, p2) || !reflect.DeepEqual(trades, trades2) {
			t.Fatalf("restored state differs:\n%+v\n%+v", p, p2)
		}
	})
	out.Want("trading paused", "trading resumed", "commands: help", "status: trading", "stats: value", "detailed: BTC",
		"portfolio: cash", "trades: last 10", "trades: last 20", "prices (tick", `unknown command "bogus"`, "rebalanced", "portfolio restored")
}

// checkConsistent replays the trades from the starting cash: the portfolio
// must equal the replay (no money created or lost but fees), and nothing
// may go negative.
func checkConsistent(t *testing.T, p Portfolio, trades []Trade) {
	t.Helper()
	if len(trades) != p.TradeCount {
		t.Fatalf("%d trades stored, count %d", len(trades), p.TradeCount)
	}
	cash, fees := StartingCash, 0.0
	held := map[string]float64{}
	for _, tr := range trades {
		switch tr.Side {
		case Buy:
			cash -= tr.Qty*tr.Price + tr.Fee
			held[tr.Symbol] += tr.Qty
		case Sell:
			cash += tr.Qty*tr.Price - tr.Fee
			held[tr.Symbol] -= tr.Qty
		}
		fees += tr.Fee
		if cash < -1e-6 || held[tr.Symbol] < -1e-9 {
			t.Fatalf("negative balance after %s", tr)
		}
	}
	if math.Abs(cash-p.Cash) > 1e-6 || math.Abs(fees-p.FeesPaid) > 1e-6 {
		t.Errorf("cash %v (replay %v), fees %v (replay %v)", p.Cash, cash, p.FeesPaid, fees)
	}
	for _, s := range Symbols {
		if math.Abs(held[s]-p.Holdings[s]) > 1e-9 {
			t.Errorf("%s held %v, replay %v", s, p.Holdings[s], held[s])
		}
	}
	// At any common prices, value plus fees equals the starting cash plus
	// what the holdings are marked at minus what they cost: checked at the
	// trades' own prices by the replay above; here, value stays positive.
	if v := p.Value(map[string]float64{"BTC": 60000, "ETH": 3000}); v <= 0 {
		t.Errorf("portfolio value %v", v)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	env := map[string]string{"TRADING_REBALANCE_INTERVAL": "5m", "TRADING_STATS_INTERVAL": "10s", "TRADING_SEED": "9"}
	o, err := optionsFromEnv(func(k string) string { return env[k] })
	if err != nil || o.RebalanceInterval != 5*time.Minute || o.StatsInterval != 10*time.Second || o.Seed != 9 || o.Live {
		t.Fatalf("%+v %v", o, err)
	}
	o, err = optionsFromEnv(func(string) string { return "" })
	if err != nil || o.RebalanceInterval != time.Hour || o.StatsInterval != time.Minute || o.FeedInterval != time.Second {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	for _, bad := range []map[string]string{{"TRADING_FEED": "x"}, {"TRADING_STATS_INTERVAL": "-1s"}, {"TRADING_SEED": "a"}} {
		if _, err := optionsFromEnv(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func tradeCount(w *hershtest.Watcher) int {
	p, _ := portfolioKey.Get(w.W)
	return p.TradeCount
}

// start builds the trader as main does (simulated feed) and starts it under
// the kit, on fake time.
func start(t *testing.T, dir string) *hershtest.Watcher {
	t.Helper()
	w, err := newTrader(hersh.Config{DisableAPIServer: true, StateDir: dir}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	return hershtest.StartWatcher(t, w)
}

// TestLiveFeed runs the live feed against a local stand-in for the
// exchange's REST ticker (127.0.0.1 only). It runs on real time, outside
// hershtest: the HTTP client keeps goroutines waiting on the network, which
// never count as blocked, so a synctest bubble would never settle.
func TestLiveFeed(t *testing.T) {
	out := hershtest.CaptureLog(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/ticker/price" || !strings.Contains(r.URL.Query().Get("symbols"), "ETHUSDT") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `[{"symbol":"BTCUSDT","price":"61234.50"},{"symbol":"ETHUSDT","price":"3100.25"}]`)
	}))
	defer srv.Close()
	opts := Options{Live: true, LiveURL: srv.URL + "/api/v3/ticker/price", FeedInterval: 20 * time.Millisecond, RebalanceInterval: time.Hour, StatsInterval: time.Hour}
	w, err := newTrader(hersh.Config{DisableAPIServer: true, StateDir: t.TempDir()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "BTC $61234.50, ETH $3100.25") {
		if time.Now().After(deadline) {
			t.Fatalf("no live prices:\n%s", out)
		}
		if err := w.Send(context.Background(), "prices"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
