package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Quote is one observation of the market: a price for every symbol.
type Quote struct {
	Seq    int64              `json:"seq"` // 1, 2, 3, ... within a session
	Time   time.Time          `json:"time"`
	Prices map[string]float64 `json:"prices"`
}

// startPrices are where the simulated random walk begins.
var startPrices = map[string]float64{"BTC": 60_000, "ETH": 3_000}

// walker is the deterministic simulated market: a seeded random walk
// (a Gaussian step of 0.5% per tick, with a slow mean-reverting pull to the
// start price so the walk stays in a sane range).
type walker struct {
	rng    *rand.Rand
	prices map[string]float64
	seq    int64
}

func newWalker(seed uint64) *walker {
	w := &walker{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), prices: map[string]float64{}}
	for _, s := range Symbols {
		w.prices[s] = startPrices[s]
	}
	return w
}

// next advances the walk one tick and returns the quote.
func (w *walker) next(at time.Time) Quote {
	w.seq++
	q := Quote{Seq: w.seq, Time: at, Prices: make(map[string]float64, len(Symbols))}
	for _, s := range Symbols {
		p := w.prices[s]
		drift := 0.01 * math.Log(startPrices[s]/p)
		p *= math.Exp(drift + 0.005*w.rng.NormFloat64())
		p = math.Round(p*100) / 100
		w.prices[s] = p
		q.Prices[s] = p
	}
	return q
}

// simulate sends a quote every interval on ch until done is closed.
func simulate(done <-chan struct{}, ch chan<- Quote, seed uint64, interval time.Duration) {
	w := newWalker(seed)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case at := <-t.C:
			select {
			case ch <- w.next(at):
			case <-done:
				return
			}
		}
	}
}

// DefaultLiveURL is Binance's public price ticker (no key needed).
const DefaultLiveURL = "https://api.binance.com/api/v3/ticker/price"

// liveSymbols maps our symbols to the exchange's pairs.
var liveSymbols = map[string]string{"BTC": "BTCUSDT", "ETH": "ETHUSDT"}

// livePoll returns a WatchCall poll function that fetches the latest prices
// from base (Binance's REST ticker, or a compatible test server) with the
// standard library only.
func livePoll(client *http.Client, base string) func(ctx context.Context, prev Quote) (Quote, bool, error) {
	pairs := make([]string, 0, len(Symbols))
	for _, s := range Symbols {
		pairs = append(pairs, liveSymbols[s])
	}
	sel, _ := json.Marshal(pairs)
	u := base + "?symbols=" + url.QueryEscape(string(sel))
	return func(ctx context.Context, prev Quote) (Quote, bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return prev, false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return prev, false, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return prev, false, err
		}
		if resp.StatusCode != http.StatusOK {
			return prev, false, fmt.Errorf("ticker: %s", resp.Status)
		}
		prices, err := parseTicker(body)
		if err != nil {
			return prev, false, err
		}
		return Quote{Seq: prev.Seq + 1, Time: time.Now(), Prices: prices}, true, nil
	}
}

// parseTicker decodes [{"symbol":"BTCUSDT","price":"60000.01"}, ...] into
// prices by our symbol; every symbol must be present and positive.
func parseTicker(body []byte) (map[string]float64, error) {
	var rows []struct {
		Symbol string `json:"symbol"`
		Price  string `json:"price"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, fmt.Errorf("ticker: %w", err)
	}
	byPair := map[string]float64{}
	for _, r := range rows {
		p, err := strconv.ParseFloat(r.Price, 64)
		if err != nil {
			return nil, fmt.Errorf("ticker %s: %w", r.Symbol, err)
		}
		byPair[r.Symbol] = p
	}
	out := map[string]float64{}
	for _, s := range Symbols {
		p := byPair[liveSymbols[s]]
		if !(p > 0) || math.IsInf(p, 0) {
			return nil, fmt.Errorf("ticker: no valid price for %s", liveSymbols[s])
		}
		out[s] = p
	}
	return out, nil
}
