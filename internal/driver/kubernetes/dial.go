package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/transport/spdy"
)

// portForwardProtocol is the port-forward subresource's stream protocol.
const portForwardProtocol = "portforward.k8s.io"

// DialContext connects to addr (127.0.0.1 or localhost with a port) on
// the program's loopback through the API server's port-forward
// subresource: the node's runtime dials it inside the Pod's network
// namespace, so no port is exposed anywhere. Under gVisor this needs the
// sandbox on the Pod's own network stack (the runsc-host handler): with
// gVisor's netstack the loopback exists only inside the sandbox.
//
// A port nothing listens on is known only once the node has tried it: the
// connection is returned at once, and its first read fails with the
// node's error.
func (d *Driver) DialContext(ctx context.Context, id, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: dial %s: %w", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("kubernetes: dial %s: bad port", addr)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("kubernetes: dial %s: only the program's loopback is reachable", addr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := d.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if s := stateOf(p); !s.running || p.DeletionTimestamp != nil {
		return nil, fmt.Errorf("kubernetes: dial %s in %s: the container is not running", addr, id)
	}
	return d.forward(ctx, id, uint16(port))
}

// upgrade opens a SPDY connection to a Pod's subresource (u: portforward
// or exec) speaking protocol, for the streams the caller creates. A
// cancelled ctx is the error, rather than the upgrade's own.
func (d *Driver) upgrade(ctx context.Context, u *url.URL, protocol string) (httpstream.Connection, error) {
	rt, upgrader, err := spdy.RoundTripperFor(d.cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, err
	}
	conn, _, err := spdy.Negotiate(upgrader, &http.Client{Transport: rt}, req, protocol)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return conn, nil
}

// forward opens one port-forward connection to the Pod with one stream
// pair (data and error) for port.
func (d *Driver) forward(ctx context.Context, id string, port uint16) (net.Conn, error) {
	u := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(d.ns).Name(id).SubResource("portforward").URL()
	conn, err := d.upgrade(ctx, u, portForwardProtocol)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: dial %s: %w", id, err)
	}
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	h.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(h)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("kubernetes: dial %s: %w", id, err)
	}
	errStream.Close() // nothing is sent on it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("kubernetes: dial %s: %w", id, err)
	}
	c := &forwardConn{conn: conn, data: data, port: port, failed: make(chan struct{})}
	go c.readErrors(errStream)
	return c, nil
}

// forwardConn is one forwarded TCP connection: the data stream of a
// port-forward connection. The node's error for it (a refused dial) comes
// on the error stream, and is returned by the read that finds the data
// stream ended.
type forwardConn struct {
	conn httpstream.Connection
	data httpstream.Stream
	port uint16

	once   sync.Once
	failed chan struct{} // closed once the error stream has ended
	err    error         // the node's message, if any (read after failed)
}

func (c *forwardConn) readErrors(s httpstream.Stream) {
	msg, err := io.ReadAll(io.LimitReader(s, 4<<10))
	if len(msg) > 0 {
		c.err = fmt.Errorf("kubernetes: port %d: %s", c.port, msg)
	} else if err != nil {
		c.err = fmt.Errorf("kubernetes: port %d: %w", c.port, err)
	}
	close(c.failed)
}

func (c *forwardConn) Read(b []byte) (int, error) {
	n, err := c.data.Read(b)
	if err != nil && n == 0 {
		// The node may have said why; it says so before it ends the data.
		select {
		case <-c.failed:
			if c.err != nil {
				return 0, c.err
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	return n, err
}

func (c *forwardConn) Write(b []byte) (int, error) { return c.data.Write(b) }

func (c *forwardConn) Close() error {
	c.once.Do(func() {
		c.data.Close()
		c.conn.Close()
	})
	return nil
}

// forwardAddr is the address a forwarded connection reports.
type forwardAddr string

func (a forwardAddr) Network() string { return "portforward" }
func (a forwardAddr) String() string  { return string(a) }

func (c *forwardConn) LocalAddr() net.Addr { return forwardAddr("host") }
func (c *forwardConn) RemoteAddr() net.Addr {
	return forwardAddr("127.0.0.1:" + strconv.Itoa(int(c.port)))
}

// Deadlines are not supported by the streams; the Host bounds its calls
// with contexts and closes the connection.
func (c *forwardConn) SetDeadline(time.Time) error      { return errNoDeadline }
func (c *forwardConn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (c *forwardConn) SetWriteDeadline(time.Time) error { return errNoDeadline }

var errNoDeadline = errors.New("kubernetes: a forwarded connection has no deadlines")
