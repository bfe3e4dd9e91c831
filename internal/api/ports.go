package api

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// Per-program proxy ports (seed compatibility, off by default). With
// Options.PortRange set, a program that becomes Ready gets the lowest free
// port of the range on 127.0.0.1, serving its WatcherAPI through the same
// token check, ownership rule and credential-stripping proxy as
// /programs/{id}/proxy/ (portHandler), so a port is no way around them. The
// port stays through restarts (Ready, Stopping, Starting, Error with a
// restart pending, ...) and is released when the program reaches Stopped,
// Error with no restart pending, or Deleting. A released program prefers
// its previous port when it is Ready again and the port is still free.
// When the range is exhausted the program runs without a port (a warning
// is logged). The ports follow the Host's changes (host.Host.Subscribe)
// and close with the API (Server.Close).

// ParsePortRange checks a --proxy-ports value: "LOW-HIGH", two ports in
// 1024-65535, LOW <= HIGH.
func ParsePortRange(s string) (low, high int, err error) { return parsePortRange(s) }

// parsePortRange parses "LOW-HIGH": two ports in 1024-65535, LOW <= HIGH.
func parsePortRange(s string) (low, high int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("api: port range %q: want LOW-HIGH (e.g. 9000-9999)", s)
	}
	low, err1 := strconv.Atoi(strings.TrimSpace(a))
	high, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("api: port range %q: want LOW-HIGH (e.g. 9000-9999)", s)
	}
	if low < 1024 || low > 65535 || high < 1024 || high > 65535 {
		return 0, 0, fmt.Errorf("api: port range %q: ports must be within 1024-65535", s)
	}
	if low > high {
		return 0, 0, fmt.Errorf("api: port range %q: low port above high port", s)
	}
	return low, high, nil
}

// ports owns the per-program listeners. Its lock is never held while
// calling into the Host.
type ports struct {
	s         *server
	low, high int
	stop      func() // ends the Host subscription

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

// startPorts opens the ports of the programs that are Ready now and
// follows the Host's changes from then on (nil when spec is empty: off).
func startPorts(s *server, spec string) (*ports, error) {
	if spec == "" {
		return nil, nil
	}
	low, high, err := parsePortRange(spec)
	if err != nil {
		return nil, err
	}
	pp := &ports{s: s, low: low, high: high, open: map[string]*portProxy{}, used: map[int]string{}, last: map[string]int{}}
	// Subscribe first, then look: a program that changes in between is
	// seen by both, and assign and release are idempotent.
	pp.stop = s.h.Subscribe(pp.observe)
	for _, id := range s.h.ReadyPrograms() {
		pp.assign(id)
	}
	return pp, nil
}

// observe assigns or releases a program's port after a change.
func (pp *ports) observe(c host.Change) {
	prev, next := c.Prev, c.Next
	switch {
	case prev.State != lifecycle.Ready && next.State == lifecycle.Ready:
		pp.assign(c.ProgramID)
	case next.State == lifecycle.Stopped, next.State == lifecycle.Deleting,
		next.State == lifecycle.Error && next.NextRestartAt.IsZero() && next.Waiting == 0:
		pp.release(c.ProgramID, next.State == lifecycle.Deleting)
	}
}

// port returns the program's port, 0 when it has none.
func (pp *ports) port(id string) int {
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

// assign opens a port for the program unless it has one: its previous port
// when free, else the lowest free port of the range.
func (pp *ports) assign(id string) {
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
			Handler:           pp.s.portHandler(id),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          slog.NewLogLogger(pp.s.log.Handler(), slog.LevelWarn),
		}
		go srv.Serve(ln)
		pp.open[id] = &portProxy{port: port, srv: srv}
		pp.used[port] = id
		pp.last[id] = port
		pp.s.log.Info("program proxy port", "program", id, "port", port)
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
	pp.s.log.Warn("no free proxy port: the program runs without one", "program", id,
		"range", fmt.Sprintf("%d-%d", pp.low, pp.high))
}

// release closes the program's port; forget drops its remembered port too
// (the program is being deleted).
func (pp *ports) release(id string, forget bool) {
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
		pp.s.log.Info("program proxy port released", "program", id, "port", p.port)
	}
}

// close ends the subscription and closes every port.
func (pp *ports) close() {
	if pp == nil {
		return
	}
	pp.stop()
	pp.mu.Lock()
	pp.closed = true
	open := pp.open
	pp.open, pp.used = map[string]*portProxy{}, map[int]string{}
	pp.mu.Unlock()
	for _, p := range open {
		p.srv.Close()
	}
}
