// Package proxybench measures what the Host's WatcherAPI proxy costs, each
// figure against its baseline in the same run (interleaved, so both see
// the same load on a shared machine):
//
//   - latency at concurrency 1: the p50 of GET /programs/{id}/proxy/watcher/status
//     on the Host's API, of the same route asked directly inside the
//     program's network namespace (the hop alone), and of GET /healthz on
//     the Host (a round trip to the Host that does nothing). The proxy's
//     overhead is proxied − direct − healthz: what it adds to the two round
//     trips a proxied request cannot avoid;
//   - throughput at concurrency 16 (by default): proxied requests per second
//     against direct ones, and their ratio, in rounds that run the two
//     sides back to back.
//
// It speaks only HTTP and a dial function, so the API's benchmark (a Host
// in process) and a benchmark command against a running `hershy serve` use
// it alike. The Host's API must be on a loopback address: benchmark traffic
// never leaves the machine.
package proxybench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target is what is measured.
type Target struct {
	// API is the Host's API base URL, on a loopback address
	// (e.g. "http://127.0.0.1:18080").
	API string
	// Token is a bearer token that may see the program.
	Token string
	// ProgramID names a Ready program.
	ProgramID string
	// Dial connects to the program's WatcherAPI inside its network
	// namespace, as the Host's driver does (the baseline's only hop):
	// for example a Docker driver's DialContext(ctx, containerID,
	// "127.0.0.1:8080").
	Dial func(ctx context.Context) (net.Conn, error)
}

// Options size a run. Zero fields take the defaults.
type Options struct {
	// Requests is the number of requests of each kind (proxied, direct,
	// healthz) timed at concurrency 1 (default 1000).
	Requests int
	// Concurrency is the number of parallel clients of the throughput
	// rounds (default 16).
	Concurrency int
	// Rounds is the number of throughput rounds; each runs the proxied
	// and the direct side once, one right after the other, in alternating
	// order (default 8).
	Rounds int
	// RoundRequests is the number of requests each side of a throughput
	// round completes (default Requests/2, at least 10 per client).
	RoundRequests int
	// Path is the WatcherAPI route asked (default "/watcher/status").
	Path string
}

func (o Options) withDefaults() Options {
	if o.Requests <= 0 {
		o.Requests = 1000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Rounds <= 0 {
		o.Rounds = 8
	}
	if o.RoundRequests <= 0 {
		o.RoundRequests = o.Requests / 2
	}
	o.RoundRequests = max(o.RoundRequests, 10*o.Concurrency)
	if o.Path == "" {
		o.Path = "/watcher/status"
	}
	return o
}

// Result holds the figures of one run.
type Result struct {
	// The p50 latencies at concurrency 1.
	ProxiedP50, DirectP50, HealthzP50 time.Duration
	// Overhead is ProxiedP50 − DirectP50 − HealthzP50: what the proxy
	// adds beyond the two round trips a proxied request is made of.
	Overhead time.Duration
	// Requests per second at Options.Concurrency, over all rounds.
	ProxiedRPS, DirectRPS float64
	// Ratio is proxied over direct throughput (1: the proxy costs no
	// throughput): the median of the rounds' ratios, each from two runs
	// back to back, so that a change of the machine's load between rounds
	// (other work on shared cores) moves it less than it moves the totals.
	Ratio float64
	// Concurrency is the throughput rounds' number of parallel clients.
	Concurrency int
}

// String is the result on one line.
func (r Result) String() string {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return fmt.Sprintf("p50 proxied %.0fµs, direct %.0fµs, healthz %.0fµs, overhead %+.0fµs; c=%d proxied %.0f/s, direct %.0f/s, ratio %.2f",
		us(r.ProxiedP50), us(r.DirectP50), us(r.HealthzP50), us(r.Overhead), r.Concurrency, r.ProxiedRPS, r.DirectRPS, r.Ratio)
}

// Run measures t. It fails on the first request that does not answer 200,
// and when ctx ends.
func Run(ctx context.Context, t Target, o Options) (Result, error) {
	o = o.withDefaults()
	if t.Dial == nil || t.ProgramID == "" || t.Token == "" {
		return Result{}, errors.New("proxybench: the target needs a program id, a token and a dial function")
	}
	base, err := loopbackBase(t.API)
	if err != nil {
		return Result{}, err
	}
	if o.Path != "/watcher" && !strings.HasPrefix(o.Path, "/watcher/") {
		return Result{}, fmt.Errorf("proxybench: path %q: want a WatcherAPI route (/watcher/...)", o.Path)
	}
	// Keep-alive on both sides, with room for every parallel client, so
	// no measured request pays for a dial.
	viaHost := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: o.Concurrency,
		ForceAttemptHTTP2:   false,
	}}
	defer viaHost.CloseIdleConnections()
	direct := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: o.Concurrency,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return t.Dial(ctx)
		},
	}}
	defer direct.CloseIdleConnections()

	var kinds [3]*request
	for i, k := range []struct {
		c            *http.Client
		target, auth string
	}{
		{viaHost, base + "/programs/" + url.PathEscape(t.ProgramID) + "/proxy" + o.Path, t.Token},
		{direct, "http://program" + o.Path, ""},
		{viaHost, base + "/healthz", ""},
	} {
		if kinds[i], err = newRequest(k.c, k.target, k.auth); err != nil {
			return Result{}, err
		}
	}
	const proxied, straight, healthz = 0, 1, 2

	// Warm up: open the connections the throughput rounds will use.
	for _, k := range []int{proxied, straight} {
		if _, err := parallel(ctx, kinds[k], o.Concurrency, 2*o.Concurrency); err != nil {
			return Result{}, err
		}
	}
	if err := kinds[healthz].do(ctx); err != nil {
		return Result{}, err
	}

	// Latency: the three kinds take turns request by request, and the
	// order within a turn rotates, so none is always first after a pause.
	var samples [3][]time.Duration
	for i := range samples {
		samples[i] = make([]time.Duration, 0, o.Requests)
	}
	for i := 0; i < o.Requests; i++ {
		for j := 0; j < 3; j++ {
			k := (i + j) % 3
			start := time.Now()
			if err := kinds[k].do(ctx); err != nil {
				return Result{}, err
			}
			samples[k] = append(samples[k], time.Since(start))
		}
	}
	r := Result{
		ProxiedP50:  p50(samples[proxied]),
		DirectP50:   p50(samples[straight]),
		HealthzP50:  p50(samples[healthz]),
		Concurrency: o.Concurrency,
	}
	r.Overhead = r.ProxiedP50 - r.DirectP50 - r.HealthzP50

	// Throughput: rounds alternate which side goes first.
	var took [2]time.Duration
	ratios := make([]float64, 0, o.Rounds)
	for round := 0; round < o.Rounds; round++ {
		order := [2]int{proxied, straight}
		if round%2 == 1 {
			order = [2]int{straight, proxied}
		}
		var this [2]time.Duration
		for _, k := range order {
			d, err := parallel(ctx, kinds[k], o.Concurrency, o.RoundRequests)
			if err != nil {
				return Result{}, err
			}
			this[k] = d
			took[k] += d
		}
		// Equal request counts: the ratio of throughputs is the inverse
		// ratio of times.
		ratios = append(ratios, this[straight].Seconds()/this[proxied].Seconds())
	}
	n := float64(o.Rounds * o.RoundRequests)
	r.ProxiedRPS = n / took[proxied].Seconds()
	r.DirectRPS = n / took[straight].Seconds()
	slices.Sort(ratios)
	r.Ratio = ratios[len(ratios)/2]
	return r, nil
}

// loopbackBase checks that api is an http URL on a loopback address and
// returns it without a trailing slash.
func loopbackBase(api string) (string, error) {
	u, err := url.Parse(api)
	if err != nil {
		return "", fmt.Errorf("proxybench: API URL: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("proxybench: API URL %q: want http://<loopback address>:<port>", api)
	}
	host := u.Hostname()
	if host != "localhost" {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.IsLoopback() {
			return "", fmt.Errorf("proxybench: API URL %q: benchmark traffic stays on loopback (127.0.0.0/8, ::1)", api)
		}
	}
	return u.Scheme + "://" + u.Host, nil
}

// request is one prepared GET, reused by every call: the benchmark's
// client should cost as little as it can, on both sides alike.
type request struct {
	c   *http.Client
	req *http.Request
}

func newRequest(c *http.Client, target, token string) (*request, error) {
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("proxybench: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return &request{c: c, req: req}, nil
}

// do sends the request once and reads the whole answer, which must be a
// 200.
func (r *request) do(ctx context.Context) error {
	resp, err := r.c.Do(r.req.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("proxybench: GET %s: %w", r.req.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("proxybench: GET %s: %s: %s", r.req.URL, resp.Status, b)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("proxybench: GET %s: reading the answer: %w", r.req.URL, err)
	}
	return nil
}

// parallel completes n requests with c clients and returns how long it
// took.
func parallel(ctx context.Context, r *request, c, n int) (time.Duration, error) {
	var (
		left    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	left.Store(int64(n))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range c {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := r.do(ctx); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if first != nil {
		return 0, first
	}
	return took, ctx.Err()
}

// p50 is the median of d (which it sorts).
func p50(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}
