package fake

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"

	"github.com/hershyorg/hershy/internal/driver"
)

// The container's loopback: listeners a Program opens, reached by
// DialContext over net.Pipe connections. No socket of the machine is used.

// listener is a TCP listener inside a container.
type listener struct {
	p       *Process
	key     string // host:port as listened on
	addr    net.Addr
	backlog chan *pipeConn // dialled, not yet accepted
	once    sync.Once
	closed  chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
}

func (l *listener) Close() error {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	l.closeLocked()
	return nil
}

// closeLocked closes the listener (p.mu held) and the connections waiting
// in its backlog: their dialers read EOF, as after a reset.
func (l *listener) closeLocked() {
	l.once.Do(func() {
		close(l.closed)
		if l.p.listeners[l.key] == l {
			delete(l.p.listeners, l.key)
		}
		for {
			select {
			case c := <-l.backlog:
				delete(l.p.conns, c) // p.mu is held: not through c.Close
				c.Conn.Close()
			default:
				return
			}
		}
	})
}

func (l *listener) Addr() net.Addr { return l.addr }

// pipeConn is one end of a dialled connection, with TCP-like addresses.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
	once          sync.Once
	onClose       func()
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

func (c *pipeConn) Close() error {
	if c.onClose != nil {
		c.once.Do(c.onClose)
	}
	return c.Conn.Close()
}

func tcpAddr(host, port string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return &net.TCPAddr{}
	}
	return a
}

// splitAddr checks "ip:port" as the Docker driver's dial does (an IP
// literal or localhost, no name resolution inside the container) and
// returns it normalised. listen accepts an empty host (all addresses).
func splitAddr(addr string, listen bool) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		return "", "", fmt.Errorf("invalid port %q", port)
	}
	switch {
	case host == "localhost":
		host = "127.0.0.1"
	case host == "" && listen:
		host = "0.0.0.0"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", "", fmt.Errorf("%s: an IP address is required (no name resolution inside the container's namespace)", addr)
	}
	return ip.String(), port, nil
}

// sameWildcardPort reports whether two listen keys clash: one is on every
// address and both have the same port.
func sameWildcardPort(a, b string) bool {
	ah, ap, _ := net.SplitHostPort(a)
	bh, bp, _ := net.SplitHostPort(b)
	wild := func(h string) bool { ip, err := netip.ParseAddr(h); return err == nil && ip.IsUnspecified() }
	return ap == bp && (wild(ah) || wild(bh))
}

// listenerFor finds what listens for a connection to host:port (p.mu held).
func (p *Process) listenerFor(host, port string) *listener {
	if l, ok := p.listeners[net.JoinHostPort(host, port)]; ok {
		return l
	}
	for _, l := range p.listeners {
		lh, lp, _ := net.SplitHostPort(l.key)
		if ip, err := netip.ParseAddr(lh); err == nil && ip.IsUnspecified() && lp == port {
			return l
		}
	}
	return nil
}

// DialContext connects to addr (an IP address or localhost, and a port)
// inside the container's loopback: to a listener its process opened. A
// missing container is driver.ErrNotFound; a container that is not
// running, or where nothing listens (ECONNREFUSED), is another error. A
// listener whose program does not accept leaves the connection unanswered
// (a full backlog makes the dial wait for ctx), as a hung program does.
// The container's exit closes its connections.
func (d *Driver) DialContext(ctx context.Context, containerID, addr string) (net.Conn, error) {
	call := Call{Method: "DialContext", Ref: containerID}
	h, err := d.begin(ctx, call)
	if err != nil {
		return nil, err
	}
	conn, err := d.dial(ctx, containerID, addr)
	if err = end(ctx, h, call, err); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	return conn, nil
}

func (d *Driver) dial(ctx context.Context, id, addr string) (net.Conn, error) {
	host, port, err := splitAddr(addr, false)
	if err != nil {
		return nil, fmt.Errorf("fake: dial %s: %w", addr, err)
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: tcpAddr(host, port), Err: syscall.ECONNREFUSED}
	d.mu.Lock()
	if err := d.usableLocked("DialContext"); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	c := d.lookup(id)
	if c == nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("fake: dial into container %s: %w", id, driver.ErrNotFound)
	}
	p := c.proc
	if p == nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("fake: dial into container %s: %w", id, errNotRunning)
	}
	p.mu.Lock()
	l := p.listenerFor(host, port)
	if l == nil {
		p.mu.Unlock()
		d.mu.Unlock()
		return nil, fmt.Errorf("fake: dial %s in container %s: %w", addr, id, refused)
	}
	d.ports++
	local := tcpAddr("127.0.0.1", strconv.Itoa(d.ports))
	cliEnd, srvEnd := net.Pipe()
	srv := &pipeConn{Conn: srvEnd, local: l.addr, remote: local}
	srv.onClose = func() {
		p.mu.Lock()
		delete(p.conns, srv)
		p.mu.Unlock()
	}
	p.conns[srv] = struct{}{}
	cli := &pipeConn{Conn: cliEnd, local: local, remote: tcpAddr(host, port)}
	p.mu.Unlock()
	d.mu.Unlock()
	select {
	case l.backlog <- srv:
		select {
		case <-l.closed: // closed as it was queued: a reset
			srv.Close()
		default:
		}
		return cli, nil
	case <-l.closed:
		err = refused
	case <-ctx.Done():
		err = ctx.Err()
	}
	srv.Close()
	cli.Close()
	return nil, fmt.Errorf("fake: dial %s in container %s: %w", addr, id, err)
}
