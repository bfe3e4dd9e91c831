// Command trading-long is a paper-trading simulator for BTC and ETH written
// with hersh: it starts with $10,000 of (paper) cash and trades on a
// moving-average crossover, buys dips and takes profits (strategy.go),
// rebalances to 80% crypto periodically and logs stats periodically.
//
// Market data comes from a deterministic simulated feed (a seeded random
// walk, fed through a channel into hersh.WatchFlow), so the program runs
// with network none. With TRADING_FEED=live it polls Binance's public REST
// price ticker with net/http through hersh.WatchCall instead (needs outbound
// network; no websocket library is used).
//
// The portfolio and the trades are durable context state in the state
// directory ($HERSH_STATE_DIR, /state under the Hershy Host;
// ./.data/trading-long when run by hand) and are restored after a restart.
//
// Messages: help, status, stats, detailed, portfolio, trades, trades20,
// trades50, pause, resume, rebalance, prices. Unknown ones log the help.
//
// Environment (all optional):
//
//	TRADING_FEED                live | sim (default sim)
//	TRADING_FEED_INTERVAL       time between quotes (default 1s; live: 5s)
//	TRADING_REBALANCE_INTERVAL  default 1h
//	TRADING_STATS_INTERVAL      default 1m
//	TRADING_SEED                seed of the simulated feed (default 42)
//	TRADING_LIVE_URL            ticker URL (default Binance's)
//
// Run it with the WatcherAPI on 127.0.0.1:8080:
//
//	HERSH_API_ADDR=127.0.0.1:8080 go run .
//	curl -s -X POST -d '{"content":"portfolio"}' http://127.0.0.1:8080/watcher/message
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

const defaultStateDir = ".data/trading-long"

// Durable context-state keys.
var (
	portfolioKey = hersh.NewKey[Portfolio]("portfolio")
	tradesKey    = hersh.NewKey[[]Trade]("trades")
)

// Options configure the trader.
type Options struct {
	Live              bool
	LiveURL           string
	FeedInterval      time.Duration
	RebalanceInterval time.Duration
	StatsInterval     time.Duration
	Seed              uint64
}

// optionsFromEnv reads Options from the environment.
func optionsFromEnv(getenv func(string) string) (Options, error) {
	o := Options{FeedInterval: time.Second, RebalanceInterval: time.Hour, StatsInterval: time.Minute, Seed: 42, LiveURL: DefaultLiveURL}
	switch f := getenv("TRADING_FEED"); f {
	case "", "sim":
	case "live":
		o.Live, o.FeedInterval = true, 5*time.Second
	default:
		return o, fmt.Errorf("TRADING_FEED=%q: want sim or live", f)
	}
	if u := getenv("TRADING_LIVE_URL"); u != "" {
		o.LiveURL = u
	}
	for name, d := range map[string]*time.Duration{
		"TRADING_FEED_INTERVAL":      &o.FeedInterval,
		"TRADING_REBALANCE_INTERVAL": &o.RebalanceInterval,
		"TRADING_STATS_INTERVAL":     &o.StatsInterval,
	} {
		if v := getenv(name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x <= 0 {
				return o, fmt.Errorf("%s=%q: want a positive duration", name, v)
			}
			*d = x
		}
	}
	if v := getenv("TRADING_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("TRADING_SEED=%q: %w", v, err)
		}
		o.Seed = s
	}
	return o, nil
}

func main() {
	opts, err := optionsFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	var cfg hersh.Config
	if os.Getenv(hersh.EnvStateDir) == "" {
		cfg.StateDir = defaultStateDir
	}
	w, err := newTrader(cfg, opts)
	if err != nil {
		log.Fatal(err)
	}
	feed := "simulated"
	if opts.Live {
		feed = "live " + opts.LiveURL
	}
	log.Printf("trading-long: %s feed, WatcherAPI on %s, state in %s", feed, w.Config().APIAddr, w.Config().StateDir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := hersh.ExitCode(w.Run(ctx))
	stop()
	os.Exit(code)
}

// trader holds the per-session market view. Only the managed function
// touches it, and hersh runs it one run at a time.
type trader struct {
	opts             Options
	feed             chan Quote
	poll             func(context.Context, Quote) (Quote, bool, error)
	hist             map[string][]float64
	last             Quote
	rebalanceDue     time.Time
	rebalancePending bool
	base             int64 // added to the session's feed Seq: trade ticks keep growing across restarts
	client           *http.Client
}

// histKeep bounds the price history kept per symbol.
const histKeep = 4 * LongWindow

// newTrader returns a watcher running the trader.
func newTrader(cfg hersh.Config, opts Options) (*hersh.Watcher, error) {
	if cfg.StateDir == "" && os.Getenv(hersh.EnvStateDir) == "" {
		cfg.StateDir = defaultStateDir
	}
	t := &trader{opts: opts}
	if opts.Live {
		t.client = &http.Client{Timeout: 10 * time.Second}
		t.poll = livePoll(t.client, opts.LiveURL)
	}
	w, err := hersh.New(cfg, t.step)
	if err != nil {
		return nil, err
	}
	if dir := w.Config().StateDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// step is the managed function.
func (t *trader) step(c *hersh.Context) error {
	if c.Trigger().Kind == hersh.TriggerStart {
		// A new session: fresh market view and, for the simulation, a feed
		// goroutine that ends with the session.
		t.hist, t.last, t.base = map[string][]float64{}, Quote{}, 0
		t.rebalancePending = false
		if p, ok := portfolioKey.Get(c); ok {
			for _, n := range p.LastTrade {
				t.base = max(t.base, n)
			}
		}
		if !t.opts.Live {
			t.feed = make(chan Quote)
			go simulate(c.Watcher().Done(), t.feed, t.opts.Seed, t.opts.FeedInterval)
		}
	}
	var quote Quote
	var have bool
	if t.opts.Live {
		quote, have = hersh.WatchCall(c, "prices", t.opts.FeedInterval, t.poll)
	} else {
		quote, have = hersh.WatchFlow(c, "prices", t.feed)
	}
	rebal := hersh.WatchTick(c, "rebalance", t.opts.RebalanceInterval)
	hersh.WatchTick(c, "stats", t.opts.StatsInterval)

	switch c.Trigger().Kind {
	case hersh.TriggerStart:
		p, ok := portfolioKey.Get(c)
		if !ok {
			p = NewPortfolio(time.Now().UTC().Round(0))
			if err := portfolioKey.Set(c, p); err != nil {
				return err
			}
			log.Printf("new portfolio: $%.2f cash", p.Cash)
		} else {
			log.Printf("portfolio restored: $%.2f cash, %s, %d trades, paused=%v", p.Cash, holdings(p), p.TradeCount, p.Paused)
		}
		return nil
	case hersh.TriggerMessage:
		return t.command(c, strings.TrimSpace(c.Message().Content))
	case hersh.TriggerVars:
		// A rebalance is due at its tick's time and runs on the first quote
		// at or after that time, after the strategy has seen the quote: the
		// same outcome whichever of two simultaneous signals comes first.
		if c.Changed("rebalance") {
			t.rebalanceDue = rebal.Time
			t.rebalancePending = true
		}
		if c.Changed("prices") && have && quote.Seq != t.last.Seq {
			if err := t.onQuote(c, quote); err != nil {
				return err
			}
		}
		if t.rebalancePending && t.last.Seq > 0 && !t.last.Time.Before(t.rebalanceDue) {
			t.rebalancePending = false
			if p, _ := portfolioKey.Get(c); p.Paused {
				log.Printf("rebalance skipped: paused")
			} else if err := t.rebalance(c); err != nil {
				return err
			}
		}
		if c.Changed("stats") {
			t.logStats(c)
		}
	}
	return nil
}

// onQuote records a quote and trades on it unless paused.
func (t *trader) onQuote(c *hersh.Context, q Quote) error {
	t.last = q
	for _, s := range Symbols {
		h := append(t.hist[s], q.Prices[s])
		if len(h) > histKeep {
			h = append([]float64(nil), h[len(h)-histKeep:]...)
		}
		t.hist[s] = h
	}
	p, _ := portfolioKey.Get(c)
	if p.Paused {
		return nil
	}
	for _, s := range Symbols {
		if o, ok := Decide(p, s, t.hist[s], t.base+q.Seq); ok {
			var err error
			if p, err = t.execute(c, p, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// execute runs o at the last price and stores the portfolio and the trade.
func (t *trader) execute(c *hersh.Context, p Portfolio, o Order) (Portfolio, error) {
	next, tr, err := Execute(p, o, t.last.Prices[o.Symbol], t.last.Time.UTC().Round(0), t.base+t.last.Seq)
	if err != nil {
		log.Printf("order not placed: %v", err)
		return p, nil
	}
	if _, err := tradesKey.Update(c, func(ts []Trade) ([]Trade, error) {
		ts = append(append([]Trade(nil), ts...), tr)
		if len(ts) > MaxTradesKept {
			ts = ts[len(ts)-MaxTradesKept:]
		}
		return ts, nil
	}); err != nil {
		return p, err
	}
	if err := portfolioKey.Set(c, next); err != nil {
		return p, err
	}
	log.Printf("trade %s", tr)
	return next, nil
}

// rebalance brings the portfolio to TargetCrypto.
func (t *trader) rebalance(c *hersh.Context) error {
	if t.last.Seq == 0 {
		log.Printf("rebalance skipped: no prices yet")
		return nil
	}
	p, _ := portfolioKey.Get(c)
	orders := RebalanceOrders(p, t.last.Prices, TargetCrypto)
	for _, o := range orders {
		var err error
		if p, err = t.execute(c, p, o); err != nil {
			return err
		}
	}
	p.Rebalances++
	if err := portfolioKey.Set(c, p); err != nil {
		return err
	}
	st := ComputeStats(p, t.last.Prices)
	log.Printf("rebalanced (%d orders): crypto %.1f%% of $%.2f", len(orders), st.CryptoPct, st.Value)
	return nil
}

func holdings(p Portfolio) string {
	parts := make([]string, 0, len(Symbols))
	for _, s := range Symbols {
		parts = append(parts, fmt.Sprintf("%.6f %s", p.Holdings[s], s))
	}
	return strings.Join(parts, ", ")
}

func (t *trader) logStats(c *hersh.Context) {
	p, _ := portfolioKey.Get(c)
	if t.last.Seq == 0 {
		log.Printf("stats: no prices yet; cash $%.2f, %d trades", p.Cash, p.TradeCount)
		return
	}
	st := ComputeStats(p, t.last.Prices)
	log.Printf("stats: value $%.2f, P&L $%+.2f (%+.2f%%), crypto %.1f%%, %d trades, fees $%.2f", st.Value, st.PnL, st.PnLPct, st.CryptoPct, p.TradeCount, p.FeesPaid)
}

const helpText = `commands: help | status | stats | detailed | portfolio | trades | trades20 | trades50 | pause | resume | rebalance | prices`

// command answers a user message.
func (t *trader) command(c *hersh.Context, cmd string) error {
	p, _ := portfolioKey.Get(c)
	switch cmd {
	case "help":
		log.Print(helpText)
	case "status":
		state := "trading"
		if p.Paused {
			state = "paused"
		}
		log.Printf("status: %s, feed tick %d, %d trades, %d rebalances", state, t.last.Seq, p.TradeCount, p.Rebalances)
	case "stats":
		t.logStats(c)
	case "detailed":
		t.logStats(c)
		for _, s := range Symbols {
			short, _ := SMA(t.hist[s], ShortWindow)
			long, _ := SMA(t.hist[s], LongWindow)
			log.Printf("detailed: %s held %.6f, avg cost $%.2f, price $%.2f, SMA%d $%.2f, SMA%d $%.2f",
				s, p.Holdings[s], p.AvgCost[s], t.last.Prices[s], ShortWindow, short, LongWindow, long)
		}
		log.Printf("detailed: fees paid $%.2f, started %s", p.FeesPaid, p.StartedAt.UTC().Format(time.RFC3339))
	case "portfolio":
		log.Printf("portfolio: cash $%.2f, %s", p.Cash, holdings(p))
		if t.last.Seq > 0 {
			st := ComputeStats(p, t.last.Prices)
			log.Printf("portfolio: value $%.2f (P&L %+.2f%%)", st.Value, st.PnLPct)
		}
	case "trades", "trades20", "trades50":
		n := 10
		if cmd != "trades" {
			n, _ = strconv.Atoi(strings.TrimPrefix(cmd, "trades"))
		}
		ts, _ := tradesKey.Get(c)
		if len(ts) > n {
			ts = ts[len(ts)-n:]
		}
		log.Printf("trades: last %d of %d", len(ts), p.TradeCount)
		for _, tr := range ts {
			log.Printf("  %s", tr)
		}
	case "pause", "resume":
		paused := cmd == "pause"
		if _, err := portfolioKey.Update(c, func(q Portfolio) (Portfolio, error) {
			q.Paused = paused
			return q, nil
		}); err != nil {
			return err
		}
		if paused {
			log.Printf("trading paused")
		} else {
			log.Printf("trading resumed")
		}
	case "rebalance":
		return t.rebalance(c)
	case "prices":
		if t.last.Seq == 0 {
			log.Printf("prices: none yet")
			return nil
		}
		parts := make([]string, 0, len(Symbols))
		for _, s := range Symbols {
			parts = append(parts, fmt.Sprintf("%s $%.2f", s, t.last.Prices[s]))
		}
		log.Printf("prices (tick %d): %s", t.last.Seq, strings.Join(parts, ", "))
	default:
		log.Printf("unknown command %q; %s", cmd, helpText)
	}
	return nil
}
