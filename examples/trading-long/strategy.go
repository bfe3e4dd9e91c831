package main

import (
	"fmt"
	"math"
	"time"
)

// The strategy: pure functions of prices and the portfolio, no I/O, so they
// are unit-tested with tables (strategy_test.go).

// Symbols traded, in a fixed order (deterministic iteration).
var Symbols = []string{"BTC", "ETH"}

// Strategy parameters.
const (
	StartingCash   = 10_000.0
	FeeRate        = 0.001 // 0.1% of each trade's notional, paid in cash
	ShortWindow    = 5     // fast moving average, in price ticks
	LongWindow     = 20    // slow moving average, in price ticks
	DipThreshold   = 0.02  // buy when the price is 2% under the slow average
	TakeProfit     = 0.05  // sell part when the price is 5% over the average cost
	CrossBuyFrac   = 0.10  // fraction of cash spent on a golden cross
	CrossSellFrac  = 0.50  // fraction of a holding sold on a death cross
	DipBuyFrac     = 0.05  // fraction of cash spent on a dip
	ProfitSellFrac = 0.25  // fraction of a holding sold to take profit
	Cooldown       = 10    // ticks between two dip/take-profit trades of a symbol
	TargetCrypto   = 0.80  // rebalance target: share of value held in crypto
	MinOrder       = 10.0  // orders under $10 are not placed
	MaxTradesKept  = 1000  // trades kept in state (the count goes on)
)

// Portfolio is the durable account.
type Portfolio struct {
	Cash       float64            `json:"cash"`
	Holdings   map[string]float64 `json:"holdings"`
	AvgCost    map[string]float64 `json:"avgCost"`
	LastTrade  map[string]int64   `json:"lastTrade"` // feed tick of the symbol's last trade
	Paused     bool               `json:"paused"`
	FeesPaid   float64            `json:"feesPaid"`
	TradeCount int                `json:"tradeCount"`
	Rebalances int                `json:"rebalances"`
	StartedAt  time.Time          `json:"startedAt"`
}

// NewPortfolio returns the starting account.
func NewPortfolio(now time.Time) Portfolio {
	return Portfolio{
		Cash:      StartingCash,
		Holdings:  map[string]float64{},
		AvgCost:   map[string]float64{},
		LastTrade: map[string]int64{},
		StartedAt: now,
	}
}

// clone copies the maps so a pure function never changes its input.
func (p Portfolio) clone() Portfolio {
	q := p
	q.Holdings, q.AvgCost, q.LastTrade = map[string]float64{}, map[string]float64{}, map[string]int64{}
	for k, v := range p.Holdings {
		q.Holdings[k] = v
	}
	for k, v := range p.AvgCost {
		q.AvgCost[k] = v
	}
	for k, v := range p.LastTrade {
		q.LastTrade[k] = v
	}
	return q
}

// Value is cash plus holdings at prices.
func (p Portfolio) Value(prices map[string]float64) float64 {
	v := p.Cash
	for _, s := range Symbols {
		v += p.Holdings[s] * prices[s]
	}
	return v
}

// Side of an order.
type Side string

const (
	Buy  Side = "BUY"
	Sell Side = "SELL"
)

// Order is an intent: buy for Notional dollars, or sell Qty units.
type Order struct {
	Symbol   string  `json:"symbol"`
	Side     Side    `json:"side"`
	Notional float64 `json:"notional,omitempty"` // buys: dollars to spend (fee included)
	Qty      float64 `json:"qty,omitempty"`      // sells: units to sell
	Reason   string  `json:"reason"`
}

// Trade is an executed order.
type Trade struct {
	N      int       `json:"n"`
	Time   time.Time `json:"time"`
	Symbol string    `json:"symbol"`
	Side   Side      `json:"side"`
	Qty    float64   `json:"qty"`
	Price  float64   `json:"price"`
	Fee    float64   `json:"fee"`
	Reason string    `json:"reason"`
}

func (t Trade) String() string {
	return fmt.Sprintf("#%d %s %s %.6f %s @ $%.2f (fee $%.2f) %s", t.N, t.Time.UTC().Format(time.RFC3339), t.Side, t.Qty, t.Symbol, t.Price, t.Fee, t.Reason)
}

// SMA is the mean of the last n prices, and false if there are fewer.
func SMA(prices []float64, n int) (float64, bool) {
	if n <= 0 || len(prices) < n {
		return 0, false
	}
	sum := 0.0
	for _, p := range prices[len(prices)-n:] {
		sum += p
	}
	return sum / float64(n), true
}

// Cross reports a moving-average crossover at the last price of hist:
// +1 the short average crossed above the long one, -1 below, 0 none.
func Cross(hist []float64) int {
	if len(hist) < LongWindow+1 {
		return 0
	}
	prev := hist[:len(hist)-1]
	s0, _ := SMA(prev, ShortWindow)
	l0, _ := SMA(prev, LongWindow)
	s1, _ := SMA(hist, ShortWindow)
	l1, _ := SMA(hist, LongWindow)
	switch {
	case s0 <= l0 && s1 > l1:
		return 1
	case s0 >= l0 && s1 < l1:
		return -1
	}
	return 0
}

// Decide returns the order (if any) the rules give for one symbol, given
// its price history (last element: the current price) at feed tick seq.
// Crossovers first; then take-profit and dip, which respect a cooldown.
func Decide(p Portfolio, sym string, hist []float64, seq int64) (Order, bool) {
	if len(hist) == 0 {
		return Order{}, false
	}
	price := hist[len(hist)-1]
	held := p.Holdings[sym]
	switch Cross(hist) {
	case 1:
		if amt := p.Cash * CrossBuyFrac; amt >= MinOrder {
			return Order{Symbol: sym, Side: Buy, Notional: amt, Reason: "golden cross"}, true
		}
	case -1:
		if q := held * CrossSellFrac; q*price >= MinOrder {
			return Order{Symbol: sym, Side: Sell, Qty: q, Reason: "death cross"}, true
		}
	}
	if last, ok := p.LastTrade[sym]; ok && seq-last < Cooldown {
		return Order{}, false
	}
	if cost := p.AvgCost[sym]; held > 0 && cost > 0 && price >= cost*(1+TakeProfit) {
		if q := held * ProfitSellFrac; q*price >= MinOrder {
			return Order{Symbol: sym, Side: Sell, Qty: q, Reason: "take profit"}, true
		}
	}
	if long, ok := SMA(hist, LongWindow); ok && price <= long*(1-DipThreshold) {
		if amt := p.Cash * DipBuyFrac; amt >= MinOrder {
			return Order{Symbol: sym, Side: Buy, Notional: amt, Reason: "dip"}, true
		}
	}
	return Order{}, false
}

// Execute applies o at price and returns the new portfolio and the trade.
// Buys never spend more than the cash, sells never sell more than held, so
// cash and holdings stay non-negative and value only ever leaves as fees.
func Execute(p Portfolio, o Order, price float64, at time.Time, seq int64) (Portfolio, Trade, error) {
	if price <= 0 || math.IsNaN(price) || math.IsInf(price, 0) {
		return p, Trade{}, fmt.Errorf("bad price %v for %s", price, o.Symbol)
	}
	q := p.clone()
	t := Trade{Time: at, Symbol: o.Symbol, Side: o.Side, Price: price, Reason: o.Reason}
	switch o.Side {
	case Buy:
		spend := math.Min(o.Notional, q.Cash)
		if spend < MinOrder {
			return p, Trade{}, fmt.Errorf("buy %s: $%.2f is under the minimum order", o.Symbol, spend)
		}
		t.Fee = spend * FeeRate
		t.Qty = (spend - t.Fee) / price
		held := q.Holdings[o.Symbol]
		q.AvgCost[o.Symbol] = (held*q.AvgCost[o.Symbol] + t.Qty*price) / (held + t.Qty)
		q.Holdings[o.Symbol] = held + t.Qty
		q.Cash -= spend
	case Sell:
		held := q.Holdings[o.Symbol]
		t.Qty = math.Min(o.Qty, held)
		if t.Qty <= 0 || t.Qty*price < MinOrder {
			return p, Trade{}, fmt.Errorf("sell %s: %.8f units is under the minimum order", o.Symbol, t.Qty)
		}
		gross := t.Qty * price
		t.Fee = gross * FeeRate
		q.Holdings[o.Symbol] = held - t.Qty
		if q.Holdings[o.Symbol] <= 1e-12 {
			q.Holdings[o.Symbol] = 0
			delete(q.AvgCost, o.Symbol)
		}
		q.Cash += gross - t.Fee
	default:
		return p, Trade{}, fmt.Errorf("unknown side %q", o.Side)
	}
	q.FeesPaid += t.Fee
	q.TradeCount++
	q.LastTrade[o.Symbol] = seq
	t.N = q.TradeCount
	return q, t, nil
}

// RebalanceOrders returns the orders that bring the portfolio to target
// (share of value in crypto, split equally between the symbols): sells
// first, so the buys can use their cash. Differences under MinOrder are left.
func RebalanceOrders(p Portfolio, prices map[string]float64, target float64) []Order {
	total := p.Value(prices)
	each := total * target / float64(len(Symbols))
	var sells, buys []Order
	for _, s := range Symbols {
		price := prices[s]
		if price <= 0 {
			return nil // no price yet: no rebalance
		}
		diff := each - p.Holdings[s]*price
		switch {
		case diff >= MinOrder:
			buys = append(buys, Order{Symbol: s, Side: Buy, Notional: diff, Reason: "rebalance"})
		case -diff >= MinOrder:
			sells = append(sells, Order{Symbol: s, Side: Sell, Qty: -diff / price, Reason: "rebalance"})
		}
	}
	return append(sells, buys...)
}

// Stats summarizes the portfolio at prices.
type Stats struct {
	Value     float64
	PnL       float64
	PnLPct    float64
	CryptoPct float64
}

// ComputeStats returns the portfolio's value, profit and crypto share.
func ComputeStats(p Portfolio, prices map[string]float64) Stats {
	v := p.Value(prices)
	st := Stats{Value: v, PnL: v - StartingCash, PnLPct: (v - StartingCash) / StartingCash * 100}
	if v > 0 {
		st.CryptoPct = (v - p.Cash) / v * 100
	}
	return st
}
