package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/driver"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// Reaching a program's WatcherAPI: the program listens on 127.0.0.1:8080
// inside its own network namespace (network "none", nothing published), and
// the driver dials into that namespace. One shared http.Transport keeps
// pooled keep-alive connections per container: requests address a
// container as http://<container-id>.container/, and the transport's dialer
// turns that host name back into a driver dial. The readiness probe and
// the API proxy use this same path.

const (
	watcherAddr     = "127.0.0.1:8080"
	containerSuffix = ".container"
)

// watcherURL is the base URL that reaches a container's WatcherAPI.
func watcherURL(containerID string) string {
	return "http://" + containerID + containerSuffix
}

func newWatcherTransport(d driver.Driver) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			id, ok := strings.CutSuffix(host, containerSuffix)
			if !ok || id == "" {
				return nil, fmt.Errorf("host: refusing to dial %q: not a program container", addr)
			}
			return d.DialContext(ctx, id, watcherAddr)
		},
		Proxy:                 nil, // never through an environment proxy
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     false,
	}
}

// probeReady polls the program until it is ready or ctx ends (the
// supervisor's start timeout, or a stop). See readyOnce for what ready
// means, and probeDelay for how often it asks; probing (nil: 1) says how
// many probes run on the Host now, which share probeBudget.
func probeReady(ctx context.Context, client *http.Client, containerID string, probing func() int64) error {
	var (
		last  error
		delay time.Duration
		start = time.Now()
	)
	for {
		err := readyOnce(ctx, client, watcherURL(containerID))
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			// Not the probe the deadline cut short: the error says what
			// the program answered last.
			last = err
		}
		delay = probeDelay(time.Since(start), delay)
		n := int64(1)
		if probing != nil {
			n = probing()
		}
		t := time.NewTimer(max(delay, time.Duration(n)*time.Second/probeBudget))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("WatcherAPI did not answer: %w", last)
		case <-t.C:
		}
	}
}

// probeDelay is the wait before the next readiness probe, elapsed into the
// probing, after a wait of prev. Most programs answer within a second of
// their start: until then the probe asks often (from 1 ms, growing by a
// quarter, at most every 20 ms), so Ready follows the program's own
// readiness by a few milliseconds rather than by a back-off step. A refused
// dial into the container costs tens of microseconds. A program slower than
// that is asked less and less often, down to every 500 ms.
func probeDelay(elapsed, prev time.Duration) time.Duration {
	if elapsed < probeEager {
		return min(max(prev+prev/4, time.Millisecond), 20*time.Millisecond)
	}
	return min(max(2*prev, 100*time.Millisecond), 500*time.Millisecond)
}

// probeEager is how long the readiness probe asks often.
const probeEager = 2 * time.Second

// probeBudget is how many readiness probes a second all the programs
// starting at once may make together: a hundred programs starting at
// once each ask every 100 ms instead of every few, so that their probes
// do not take the CPU the starting containers need (each probe enters a
// container's network namespace).
const probeBudget = 1000

// readyOnce asks the WatcherAPI at base once whether the program is ready:
//   - GET /watcher/ready answers 200: ready (a hersh program, which answers
//     503 until its watcher runs);
//   - it answers 404: the program has no readiness route, as programs
//     written to the seed's WatcherAPI contract have not. Then GET
//     /watcher/status answering 200 is ready: the seed's contract promises
//     no more than that its WatcherAPI answers;
//   - any other answer (503 above all: "not yet"), or no answer: not ready.
//     A program that has the route is never judged by its status.
func readyOnce(ctx context.Context, client *http.Client, base string) error {
	code, err := probeGet(ctx, client, base+"/watcher/ready")
	if err != nil {
		return err
	}
	switch code {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		code, err = probeGet(ctx, client, base+"/watcher/status")
		if err != nil {
			return err
		}
		if code == http.StatusOK {
			return nil
		}
		return fmt.Errorf("no /watcher/ready, and /watcher/status answered %d %s", code, http.StatusText(code))
	}
	return fmt.Errorf("WatcherAPI answered %d %s", code, http.StatusText(code))
}

// probeGet GETs url and returns the status code; the body is drained (a
// little) so the connection goes back to the pool.
func probeGet(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// ErrNotReady is returned for WatcherAPI access to a program that is not
// Ready (503).
var ErrNotReady = errors.New("program is not ready")

// WatcherAPI returns the base URL and transport that reach a Ready
// program's WatcherAPI (the proxy's upstream).
func (h *Host) WatcherAPI(id string) (base string, rt http.RoundTripper, err error) {
	s, err := h.sup(id)
	if err != nil {
		return "", nil, err
	}
	p := s.Program()
	if p.State != lifecycle.Ready || p.ContainerID == "" {
		return "", nil, fmt.Errorf("%w (state %s)", ErrNotReady, p.State)
	}
	return watcherURL(p.ContainerID), h.wt, nil
}
