package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// The proxy's upstreams: one httputil.ReverseProxy with its own
// http.Transport per program container, made at the first request after
// the program became Ready and reused until the program leaves Ready or
// that container (a restart's new container is a new network namespace,
// so it gets a new transport), or is deleted. Its keep-alive connections
// into the container are reused across requests; a forgotten upstream
// closes them (retire). The cache follows the Host's changes
// (host.Host.Subscribe), as the proxy ports do, and asks the Host again
// after each addition (host.Host.ProxyTarget says why that is enough for a
// program that leaves Ready meanwhile).

// Transport settings of an upstream. One program's clients share its
// connections; a connection beyond maxIdlePerProgram is closed after its
// request instead of kept (a new dial into a namespace costs 0.5-0.8 ms).
const (
	maxIdlePerProgram   = 32
	upstreamIdleTimeout = 90 * time.Second
)

// errProxyClosed refuses requests that arrive after Server.Close (503).
var errProxyClosed = fmt.Errorf("%w: the API is closing", host.ErrNotReady)

type upstreams struct {
	h             *host.Host
	inFlight      int           // Options.ProxyInFlight
	headerTimeout time.Duration // Options.ProxyHeaderTimeout
	log           func(id string, err error)
	buffers       *bufferPool
	stop          func() // ends the Host subscription

	mu     sync.Mutex
	byID   map[string]*upstream // program id -> its current container's upstream
	closed bool
}

// upstream reaches one container's WatcherAPI.
type upstream struct {
	container string
	tr        *http.Transport
	rp        *httputil.ReverseProxy
	retired   atomic.Bool
	slots     chan struct{} // one per request in flight (Options.ProxyInFlight)
}

// newUpstreams starts following h's changes; log reports a request the
// program did not answer.
func newUpstreams(h *host.Host, inFlight int, headerTimeout time.Duration, log func(id string, err error)) *upstreams {
	u := &upstreams{h: h, inFlight: inFlight, headerTimeout: headerTimeout, log: log, buffers: newBufferPool(64, 32<<10), byID: map[string]*upstream{}}
	u.stop = h.Subscribe(u.observe)
	return u
}

// observe forgets a program's upstream once the program is not Ready on
// that container any more, or is deleted.
func (u *upstreams) observe(c host.Change) {
	keep := ""
	if !c.Deleted && c.Next.State == lifecycle.Ready {
		keep = c.Next.ContainerID
	}
	u.mu.Lock()
	up := u.byID[c.ProgramID]
	if up == nil || (keep != "" && up.container == keep) {
		u.mu.Unlock()
		return
	}
	delete(u.byID, c.ProgramID)
	u.mu.Unlock()
	up.retire()
}

// get returns the upstream of program id's container cid (which
// ProxyTarget named), making it on first use.
func (u *upstreams) get(ctx context.Context, id, cid string) (*upstream, error) {
	u.mu.Lock()
	up := u.byID[id]
	if up != nil && up.container == cid {
		u.mu.Unlock()
		return up, nil
	}
	if u.closed {
		u.mu.Unlock()
		return nil, errProxyClosed
	}
	old := up
	up = u.newUpstream(id, cid)
	u.byID[id] = up
	u.mu.Unlock()
	if old != nil {
		old.retire()
	}
	// A change that took cid away before the insert found nothing to
	// forget; the Host no longer names cid after it, so look again.
	pt, err := u.h.ProxyTarget(ctx, id)
	if err == nil && pt.ContainerID == cid {
		return up, nil
	}
	u.mu.Lock()
	if u.byID[id] == up {
		delete(u.byID, id)
	}
	u.mu.Unlock()
	up.retire()
	if err == nil {
		err = fmt.Errorf("%w (state %s)", host.ErrNotReady, pt.State)
	}
	return nil, err
}

func (u *upstreams) newUpstream(id, cid string) *upstream {
	up := &upstream{container: cid, slots: make(chan struct{}, u.inFlight)}
	h := u.h
	up.tr = &http.Transport{
		// Every connection of this transport goes into cid's namespace,
		// whatever the URL says.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return h.DialWatcher(ctx, cid)
		},
		Proxy:                 nil, // never through an environment proxy
		MaxIdleConnsPerHost:   maxIdlePerProgram,
		IdleConnTimeout:       upstreamIdleTimeout,
		ResponseHeaderTimeout: u.headerTimeout,
		// The caller's Accept-Encoding goes through as it is, and the
		// answer comes back as the program wrote it: no gzip asked for
		// on the caller's behalf and undone here.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	target := cid + containerHostSuffix
	up.rp = &httputil.ReverseProxy{
		Transport:      up.tr,
		Rewrite:        func(pr *httputil.ProxyRequest) { rewrite(pr, target) },
		ModifyResponse: stripResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			proxyError(w, r, err, func(err error) { u.log(id, err) })
		},
		BufferPool: u.buffers,
		// FlushInterval 0: the answer is flushed as it is copied only
		// when it may stream (text/event-stream, or no Content-Length);
		// any other answer goes out when the handler ends, headers and
		// body in one write.
	}
	return up
}

// retire marks the upstream forgotten and closes its idle connections;
// requests still on it close theirs when they end (done).
func (up *upstream) retire() {
	up.retired.Store(true)
	up.tr.CloseIdleConnections()
}

// done is called when a request on up has ended: the connection it
// returns to a retired upstream's pool is closed, not kept.
// (CloseIdleConnections also makes the transport close a connection that
// becomes idle after it, until the next request asks for one; that
// request calls done in turn.)
func (up *upstream) done() {
	if up.retired.Load() {
		up.tr.CloseIdleConnections()
	}
}

// count is how many upstreams are cached.
func (u *upstreams) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.byID)
}

// close ends the subscription and retires every upstream.
func (u *upstreams) close() {
	u.stop()
	u.mu.Lock()
	u.closed = true
	all := u.byID
	u.byID = map[string]*upstream{}
	u.mu.Unlock()
	for _, up := range all {
		up.retire()
	}
}

// bufferPool lends the reverse proxies their copy buffers, so an answer
// does not allocate 32 KiB. It keeps at most its capacity of free buffers.
type bufferPool struct {
	free chan []byte
	size int
}

func newBufferPool(capacity, size int) *bufferPool {
	return &bufferPool{free: make(chan []byte, capacity), size: size}
}

func (p *bufferPool) Get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]byte, p.size)
	}
}

func (p *bufferPool) Put(b []byte) {
	if cap(b) != p.size {
		return
	}
	select {
	case p.free <- b[:p.size]:
	default:
	}
}
