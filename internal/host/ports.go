package host

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/internal/lifecycle"
)

// Per-program proxy ports (seed compatibility, off by default). With
// Options.PortRange set, a program that becomes Ready gets the lowest free
// port of the range on 127.0.0.1; the port forwards /watcher/ requests to
// the program's WatcherAPI, resolved on every request so a restarted
// container is followed. The port stays through restarts (Ready, Stopping,
// Starting, Error with a restart pending, ...) and is released when the
// program reaches Stopped, Error with no restart pending, or Deleting. A
// released program prefers its previous port when it is Ready again and
// the port is still free. When the range is exhausted the program runs
// without a port (a warning is logged).
//
// The Host owns the listeners; what they serve is the API's (ServePorts):
// the same token check, ownership rule and credential-stripping proxy as
// /programs/{id}/proxy/, so a port is no way around them. Until the API
// installs its server, and when it is removed, every port answers 503.

// parsePortRange parses "LOW-HIGH": two ports in 1024-65535, LOW <= HIGH.
func parsePortRange(s string) (low, high int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("host: port range %q: want LOW-HIGH (e.g. 9000-9999)", s)
	}
	low, err1 := strconv.Atoi(strings.TrimSpace(a))
	high, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("host: port range %q: want LOW-HIGH (e.g. 9000-9999)", s)
	}
	if low < 1024 || low > 65535 || high < 1024 || high > 65535 {
		return 0, 0, fmt.Errorf("host: port range %q: ports must be within 1024-65535", s)
	}
	if low > high {
		return 0, 0, fmt.Errorf("host: port range %q: low port above high port", s)
	}
	return low, high, nil
}

// portProxies owns the per-program listeners. Its lock is never held while
// taking Host.mu (the request path calls WatcherAPI without it).
type portProxies struct {
	h         *Host
	low, high int
	serve     atomic.Pointer[PortServer] // what the ports serve (nil: 503)

	mu     sync.Mutex
	open   map[string]*portProxy // program id -> its open port
	used   map[int]string        // port -> program id
	last   map[string]int        // program id -> the port it last had
	closed bool
}

type portProxy struct {
	port int
	srv  *http.Server
}

func newPortProxies(h *Host, spec string) (*portProxies, error) {
	if spec == "" {
		return nil, nil
	}
	low, high, err := parsePortRange(spec)
	if err != nil {
		return nil, err
	}
	return &portProxies{
		h: h, low: low, high: high,
		open: map[string]*portProxy{}, used: map[int]string{}, last: map[string]int{},
	}, nil
}

// PortServer serves one request that arrived on the proxy port of program
// programID.
type PortServer func(w http.ResponseWriter, r *http.Request, programID string)

// ServePorts installs what every program's proxy port serves (nil: nothing,
// every port answers 503). The API installs its authenticated WatcherAPI
// proxy; ports may open before it does (Open re-adopts Ready programs), so
// until then they refuse. Without a port range it does nothing.
func (h *Host) ServePorts(f PortServer) {
	if h.ports == nil {
		return
	}
	if f == nil {
		h.ports.serve.Store(nil)
		return
	}
	h.ports.serve.Store(&f)
}

// ProxyPort returns the loopback port forwarding to the program's
// WatcherAPI, or 0 when it has none (ports off, not running, or the range
// was exhausted).
func (h *Host) ProxyPort(id string) int {
	pp := h.ports
	if pp == nil {
		return 0
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if p, ok := pp.open[id]; ok {
		return p.port
	}
	return 0
}

// portsObserve assigns or releases a program's port after a state change.
func (h *Host) portsObserve(id string, prev, next lifecycle.Program) {
	pp := h.ports
	if pp == nil {
		return
	}
	switch {
	case prev.State != lifecycle.Ready && next.State == lifecycle.Ready:
		pp.assign(id)
	case next.State == lifecycle.Stopped, next.State == lifecycle.Deleting,
		next.State == lifecycle.Error && next.NextRestartAt.IsZero() && next.Waiting == 0:
		pp.release(id, next.State == lifecycle.Deleting)
	}
}

// assignIfOn assigns the program a port when ports are on.
func (pp *portProxies) assignIfOn(id string) {
	if pp != nil {
		pp.assign(id)
	}
}

// assign opens a port for the program unless it has one: its previous port
// when free, else the lowest free port of the range.
func (pp *portProxies) assign(id string) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.closed {
		return
	}
	if _, ok := pp.open[id]; ok {
		return
	}
	try := func(port int) bool {
		if _, taken := pp.used[port]; taken {
			return false
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return false // taken by something outside this Host
		}
		srv := &http.Server{
			Handler:           pp.handler(id),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          slog.NewLogLogger(pp.h.log.Handler(), slog.LevelWarn),
		}
		go srv.Serve(ln)
		pp.open[id] = &portProxy{port: port, srv: srv}
		pp.used[port] = id
		pp.last[id] = port
		pp.h.log.Info("program proxy port", "program", id, "port", port)
		return true
	}
	if p, ok := pp.last[id]; ok && p >= pp.low && p <= pp.high && try(p) {
		return
	}
	for p := pp.low; p <= pp.high; p++ {
		if try(p) {
			return
		}
	}
	pp.h.log.Warn("no free proxy port: the program runs without one", "program", id,
		"range", fmt.Sprintf("%d-%d", pp.low, pp.high))
}

// release closes the program's port; forget drops its remembered port too
// (the program is being deleted).
func (pp *portProxies) release(id string, forget bool) {
	pp.mu.Lock()
	p, ok := pp.open[id]
	if ok {
		delete(pp.open, id)
		delete(pp.used, p.port)
	}
	if forget {
		delete(pp.last, id)
	}
	pp.mu.Unlock()
	if ok {
		p.srv.Close()
		pp.h.log.Info("program proxy port released", "program", id, "port", p.port)
	}
}

// closeAll closes every port; later assignments are refused.
func (pp *portProxies) closeAll() {
	if pp == nil {
		return
	}
	pp.mu.Lock()
	pp.closed = true
	open := pp.open
	pp.open, pp.used = map[string]*portProxy{}, map[int]string{}
	pp.mu.Unlock()
	for _, p := range open {
		p.srv.Close()
	}
}

// handler is the port of program id: it hands every request to the
// installed PortServer, looked up per request.
func (pp *portProxies) handler(id string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := pp.serve.Load()
		if f == nil {
			portError(w, http.StatusServiceUnavailable, "this port is not served yet")
			return
		}
		(*f)(w, r, id)
	})
}

// portError answers in the API's error shape.
func portError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": http.StatusText(status), "code": status, "message": msg})
}
