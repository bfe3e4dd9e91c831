package main

import (
	"math"
	"testing"
	"time"
)

func flat(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestSMA(t *testing.T) {
	for _, tc := range []struct {
		prices []float64
		n      int
		want   float64
		ok     bool
	}{
		{nil, 3, 0, false},
		{[]float64{1, 2}, 3, 0, false},
		{[]float64{1, 2, 3}, 3, 2, true},
		{[]float64{10, 1, 2, 3}, 2, 2.5, true},
		{[]float64{1}, 0, 0, false},
	} {
		got, ok := SMA(tc.prices, tc.n)
		if got != tc.want || ok != tc.ok {
			t.Errorf("SMA(%v, %d) = %v, %v; want %v, %v", tc.prices, tc.n, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCross(t *testing.T) {
	for _, tc := range []struct {
		name string
		hist []float64
		want int
	}{
		{"too short", flat(LongWindow, 100), 0},
		{"flat", flat(LongWindow+5, 100), 0},
		{"jump up", append(flat(LongWindow+5, 100), 120), 1},
		{"drop", append(flat(LongWindow+5, 100), 80), -1},
	} {
		if got := Cross(tc.hist); got != tc.want {
			t.Errorf("%s: Cross = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestDecide(t *testing.T) {
	base := NewPortfolio(time.Time{})
	holding := base.clone()
	holding.Holdings["BTC"], holding.AvgCost["BTC"] = 1, 100
	cooling := holding.clone()
	cooling.LastTrade["BTC"] = 95
	for _, tc := range []struct {
		name   string
		p      Portfolio
		hist   []float64
		seq    int64
		side   Side
		reason string
	}{
		{"no history", base, nil, 1, "", ""},
		{"flat market", base, flat(30, 100), 100, "", ""},
		{"golden cross buys", base, append(flat(30, 100), 120), 100, Buy, "golden cross"},
		{"death cross sells", holding, append(flat(30, 100), 80), 100, Sell, "death cross"},
		{"death cross without holding buys the dip", base, append(flat(30, 100), 80), 100, Buy, "dip"},
		{"dip buys", base, append(append(flat(30, 100), 99, 99, 99, 99, 99), 97), 100, Buy, "dip"},
		{"take profit", holding, append(flat(30, 106), 106), 100, Sell, "take profit"},
		{"cooldown blocks take profit", cooling, append(flat(30, 106), 106), 100, "", ""},
	} {
		o, ok := Decide(tc.p, "BTC", tc.hist, tc.seq)
		if ok != (tc.side != "") || o.Side != tc.side || o.Reason != tc.reason {
			t.Errorf("%s: Decide = %+v, %v; want %q %q", tc.name, o, ok, tc.side, tc.reason)
		}
	}
}

func TestExecute(t *testing.T) {
	at := time.Unix(0, 0)
	p := NewPortfolio(at)
	for _, tc := range []struct {
		name     string
		o        Order
		price    float64
		wantErr  bool
		wantCash float64
		wantQty  float64
	}{
		{"buy", Order{Symbol: "BTC", Side: Buy, Notional: 1000}, 100, false, 9000, 9.99},
		{"buy more than cash", Order{Symbol: "BTC", Side: Buy, Notional: 20000}, 100, false, 0, 99.9},
		{"tiny buy", Order{Symbol: "BTC", Side: Buy, Notional: 1}, 100, true, StartingCash, 0},
		{"sell nothing", Order{Symbol: "BTC", Side: Sell, Qty: 1}, 100, true, StartingCash, 0},
		{"bad price", Order{Symbol: "BTC", Side: Buy, Notional: 100}, 0, true, StartingCash, 0},
	} {
		q, tr, err := Execute(p, tc.o, tc.price, at, 1)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if math.Abs(q.Cash-tc.wantCash) > 1e-9 || math.Abs(q.Holdings["BTC"]-tc.wantQty) > 1e-9 {
			t.Errorf("%s: cash %v holdings %v; want %v %v", tc.name, q.Cash, q.Holdings["BTC"], tc.wantCash, tc.wantQty)
		}
		prices := map[string]float64{"BTC": tc.price, "ETH": 1}
		if err == nil && math.Abs(q.Value(prices)+tr.Fee-p.Value(prices)) > 1e-6 {
			t.Errorf("%s: value %v + fee %v != %v", tc.name, q.Value(prices), tr.Fee, p.Value(prices))
		}
	}
	if p.Cash != StartingCash || len(p.Holdings) != 0 {
		t.Errorf("Execute changed its input: %+v", p)
	}
	// A sell after a buy returns cash minus fees.
	q, _, _ := Execute(p, Order{Symbol: "ETH", Side: Buy, Notional: 1000}, 50, at, 1)
	r, tr, err := Execute(q, Order{Symbol: "ETH", Side: Sell, Qty: 100}, 50, at, 2)
	if err != nil || r.Holdings["ETH"] != 0 || math.Abs(r.Cash-(9000+tr.Qty*50*(1-FeeRate))) > 1e-9 {
		t.Errorf("sell all: %+v %+v %v", r, tr, err)
	}
}

func TestRebalanceOrders(t *testing.T) {
	prices := map[string]float64{"BTC": 100, "ETH": 10}
	cash := NewPortfolio(time.Time{})
	allIn := cash.clone()
	allIn.Cash, allIn.Holdings["BTC"], allIn.Holdings["ETH"] = 0, 50, 500
	balanced := cash.clone()
	balanced.Cash, balanced.Holdings["BTC"], balanced.Holdings["ETH"] = 2000, 40, 400
	for _, tc := range []struct {
		name   string
		p      Portfolio
		prices map[string]float64
		want   []Order
	}{
		{"all cash buys both", cash, prices, []Order{
			{Symbol: "BTC", Side: Buy, Notional: 4000, Reason: "rebalance"},
			{Symbol: "ETH", Side: Buy, Notional: 4000, Reason: "rebalance"},
		}},
		{"all crypto sells both", allIn, prices, []Order{
			{Symbol: "BTC", Side: Sell, Qty: 10, Reason: "rebalance"},
			{Symbol: "ETH", Side: Sell, Qty: 100, Reason: "rebalance"},
		}},
		{"balanced does nothing", balanced, prices, nil},
		{"no prices", cash, map[string]float64{}, nil},
	} {
		got := RebalanceOrders(tc.p, tc.prices, TargetCrypto)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			g, w := got[i], tc.want[i]
			if g.Symbol != w.Symbol || g.Side != w.Side || math.Abs(g.Notional-w.Notional) > 1e-6 || math.Abs(g.Qty-w.Qty) > 1e-6 {
				t.Errorf("%s: order %d = %+v, want %+v", tc.name, i, g, w)
			}
		}
	}
}

func TestParseTicker(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`[{"symbol":"BTCUSDT","price":"60000.5"},{"symbol":"ETHUSDT","price":"3000.25"}]`, true},
		{`[{"symbol":"BTCUSDT","price":"60000.5"}]`, false},
		{`[{"symbol":"BTCUSDT","price":"x"},{"symbol":"ETHUSDT","price":"1"}]`, false},
		{`{}`, false},
	} {
		got, err := parseTicker([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("parseTicker(%s): %v, %v", tc.body, got, err)
		}
		if tc.ok && (got["BTC"] != 60000.5 || got["ETH"] != 3000.25) {
			t.Errorf("parseTicker: %v", got)
		}
	}
}

func TestWalkerDeterministic(t *testing.T) {
	a, b := newWalker(7), newWalker(7)
	for i := range 100 {
		qa, qb := a.next(time.Time{}), b.next(time.Time{})
		if qa.Prices["BTC"] != qb.Prices["BTC"] || qa.Prices["ETH"] != qb.Prices["ETH"] || qa.Prices["BTC"] <= 0 {
			t.Fatalf("tick %d differs: %v %v", i, qa, qb)
		}
	}
}
