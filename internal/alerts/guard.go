package alerts

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// Guard decides which addresses a webhook delivery may connect to: public
// unicast addresses, and whatever the operator allowed. It refuses
// loopback, the private, shared (CGNAT), link-local (the cloud metadata
// address among them), multicast and reserved ranges, the NAT64 and 6to4
// prefixes (which embed an IPv4 address), and every address of this
// machine's own interfaces (the Host's API among them).
type Guard struct {
	allow []netip.Prefix
	// self lists this machine's addresses; net.InterfaceAddrs by default,
	// read at each check since addresses come and go.
	self func() []netip.Addr
	// hostPorts are the Host's own ports (its API, its proxy ports): no
	// delivery reaches them on this machine, allowed or not.
	hostPorts []PortRange
}

// PortRange is a range of ports, both ends included.
type PortRange struct{ Lo, Hi uint16 }

// NewGuard makes a guard that also lets through the allowed prefixes
// (the operator's --webhook-allow).
func NewGuard(allow []netip.Prefix) *Guard {
	return &Guard{allow: append([]netip.Prefix(nil), allow...), self: interfaceAddrs}
}

// denied are ranges no webhook reaches unless allowed, besides what
// netip's predicates cover (loopback, private, link-local, multicast,
// unspecified).
var denied = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // shared address space (CGNAT)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, and the broadcast address
		"64:ff9b::/96",    // NAT64: an IPv4 address inside
		"64:ff9b:1::/48",  // local-use NAT64
		"2002::/16",       // 6to4: an IPv4 address inside
		"2001:db8::/32",   // documentation
		"100::/64",        // discard
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// DenyHostPorts refuses deliveries to these ports on this machine's own
// addresses (loopback and its interfaces) even where Allow lets the
// address through: a webhook must not drive the Host's own API.
func (g *Guard) DenyHostPorts(ports ...PortRange) {
	g.hostPorts = append(g.hostPorts, ports...)
}

// local reports whether a is an address of this machine.
func (g *Guard) local(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	if g.self != nil {
		for _, s := range g.self() {
			if s.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// CheckAddrPort is Check, and also refuses the Host's own ports on this
// machine.
func (g *Guard) CheckAddrPort(ap netip.AddrPort) error {
	a := ap.Addr().Unmap()
	if len(g.hostPorts) > 0 && g.local(a) {
		for _, r := range g.hostPorts {
			if ap.Port() >= r.Lo && ap.Port() <= r.Hi {
				return &RefusedError{Addr: a, Why: fmt.Sprintf("port %d is the Host's own", ap.Port())}
			}
		}
	}
	return g.Check(a)
}

// RefusedError is a delivery's address the guard refused.
type RefusedError struct {
	Addr netip.Addr
	Why  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("webhook address %s refused: %s (the operator can allow it with --webhook-allow)", e.Addr, e.Why)
}

// Check says whether a delivery may connect to a.
func (g *Guard) Check(a netip.Addr) error {
	a = a.Unmap()
	for _, p := range g.allow {
		if p.Contains(a) {
			return nil
		}
	}
	why := ""
	switch {
	case !a.IsValid():
		why = "not an address"
	case a.IsLoopback():
		why = "loopback"
	case a.IsUnspecified():
		why = "unspecified"
	case a.IsPrivate():
		why = "a private address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		why = "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		why = "multicast"
	}
	if why == "" {
		for _, p := range denied {
			if p.Contains(a) {
				why = "a reserved or special-purpose range (" + p.String() + ")"
				break
			}
		}
	}
	if why == "" && g.self != nil {
		for _, s := range g.self() {
			if s.Unmap() == a {
				why = "an address of the Host's own machine"
				break
			}
		}
	}
	if why != "" {
		return &RefusedError{Addr: a, Why: why}
	}
	return nil
}

// control is the dialer's hook: it runs on the address about to be
// connected to, after name resolution, so a name that resolves to a
// refused address (at registration or only later) is refused.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook dial to %q: %w", address, err)
	}
	return g.CheckAddrPort(ap)
}

func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// maxURL bounds a webhook URL's length.
const maxURL = 2048

// CheckURL validates a webhook URL at registration: http or https, a
// host, no credentials or fragment, and, when the host is an address or
// localhost, an address the guard lets through. Names are resolved only
// when delivering (Check runs again then, on the address dialled). It
// returns the URL as it will be used.
func (g *Guard) CheckURL(raw string) (string, error) {
	if len(raw) > maxURL {
		return "", fmt.Errorf("the URL is longer than %d bytes", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("the URL must be http or https, not %q", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("the URL has no host")
	case u.User != nil:
		return "", fmt.Errorf("the URL may not hold credentials; the delivery is signed with the webhook's secret instead")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("the URL may not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("the URL's port %q is not a port", p)
		}
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	port := uint16(80)
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		port = uint16(n)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := g.CheckAddrPort(netip.AddrPortFrom(a, port)); err != nil {
			return "", err
		}
	} else if numericName(host) {
		// "0", "2130706433" or "0x7f.1": resolvers read these as IPv4
		// addresses in inet_aton's forms; no real name ends so.
		return "", fmt.Errorf("the URL's host %q looks like an address in a non-standard form; write the address plainly", host)
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		if err := g.CheckAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)); err != nil {
			return "", err
		}
	}
	return u.String(), nil
}

// numericName reports whether a host name's last label is a number (in
// decimal or hexadecimal): no top-level domain is.
func numericName(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if strings.HasPrefix(last, "0x") {
		return true
	}
	if last == "" {
		return false
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
