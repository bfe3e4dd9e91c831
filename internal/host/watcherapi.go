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

	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/runtime"
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

func newWatcherTransport(d runtime.Driver) *http.Transport {
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

// probeReady polls the program's readiness route until it answers 200 or
// ctx ends (the supervisor's start timeout, or a stop).
func probeReady(ctx context.Context, client *http.Client, containerID string) error {
	var last error
	delay := 50 * time.Millisecond
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, watcherURL(containerID)+"/watcher/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("WatcherAPI answered %s", resp.Status)
		} else {
			last = err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("WatcherAPI did not answer: %w", last)
		case <-t.C:
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
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
