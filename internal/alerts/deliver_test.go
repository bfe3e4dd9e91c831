package alerts

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_764_500_000, 0)
	body := []byte(`{"type":"crashed"}`)
	h := Sign("s3cret", now, body)
	if err := Verify("s3cret", h, body, now.Add(time.Minute)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		now            time.Time
		want           error
	}{
		"wrong secret":  {"other", h, body, now, ErrBadSignature},
		"body changed":  {"s3cret", h, []byte(`{"type":"ping"}`), now, ErrBadSignature},
		"time changed":  {"s3cret", strings.Replace(h, "t=1764500000", "t=1764500001", 1), body, now, ErrBadSignature},
		"replayed late": {"s3cret", h, body, now.Add(10 * time.Minute), ErrStale},
		"no signature":  {"s3cret", "t=1764500000", body, now, ErrBadSignature},
		"garbage":       {"s3cret", "v1=zz,t=x", body, now, ErrBadSignature},
	} {
		if err := Verify(tc.secret, tc.header, tc.body, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.want)
		}
	}
}

func TestGuardCheck(t *testing.T) {
	g := NewGuard(nil)
	g.self = func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("203.0.114.7")} }
	refused := []string{
		"127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "10.1.2.3", "172.16.0.1", "192.168.1.1",
		"169.254.169.254", "fe80::1", "fd00::1", "100.64.0.1", "224.0.0.1", "ff02::1",
		"255.255.255.255", "198.18.0.1", "192.0.2.1", "64:ff9b::a00:1", "2002:a00:1::1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254",
		"203.0.114.7", // the machine's own address
	}
	for _, s := range refused {
		var re *RefusedError
		if err := g.Check(netip.MustParseAddr(s)); !errors.As(err, &re) {
			t.Errorf("%s: Check = %v, want refused", s, err)
		}
	}
	for _, s := range []string{"1.1.1.1", "93.184.216.34", "2606:4700::1111"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: Check = %v, want allowed", s, err)
		}
	}
	g = NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")})
	for _, s := range []string{"127.0.0.1", "10.9.8.7", "::ffff:127.0.0.1"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s allowed by the operator: Check = %v", s, err)
		}
	}
	if g.Check(netip.MustParseAddr("127.0.0.2")) == nil {
		t.Error("127.0.0.2 allowed by 127.0.0.1/32")
	}
}

func TestCheckURL(t *testing.T) {
	g := NewGuard(nil)
	g.self = func() []netip.Addr { return nil }
	for _, bad := range []string{
		"ftp://example.com/x", "file:///etc/passwd", "gopher://x", "http://", "http:///x", "example.com/hook",
		"http://user:pw@example.com/", "http://example.com/#frag", "http://example.com:99999/",
		"http://127.0.0.1/", "http://[::1]:8080/", "http://localhost/", "http://LOCALHOST./", "http://a.localhost/",
		"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::ffff:127.0.0.1]/",
		"http://0/", "http://0x7f.1/",
		"https://example.com/" + strings.Repeat("a", maxURL),
	} {
		if u, err := g.CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) = %q, want refused", bad, u)
		}
	}
	for _, ok := range []string{"https://hooks.example.com/hershy?k=v", "http://93.184.216.34:8080/x"} {
		if _, err := g.CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q): %v", ok, err)
		}
	}
	allowed := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	if _, err := allowed.CheckURL("http://127.0.0.1:9/hook"); err != nil {
		t.Errorf("loopback the operator allowed: %v", err)
	}
	// The Host's own ports stay refused on loopback, allowed or not.
	allowed.DenyHostPorts(PortRange{18080, 18080}, PortRange{9000, 9999})
	for _, bad := range []string{"http://127.0.0.1:18080/programs", "http://localhost:9500/", "http://127.0.0.2:9000/"} {
		if _, err := allowed.CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) accepted the Host's own port", bad)
		}
	}
	if _, err := allowed.CheckURL("http://127.0.0.1:8999/hook"); err != nil {
		t.Errorf("a port next to the Host's: %v", err)
	}
}

// TestDeliverRefusesHostPort is the attack on the Host itself: an
// operator allowed loopback (for a local receiver), and a webhook names
// the Host's own API port through a name, so only the dial sees it.
func TestDeliverRefusesHostPort(t *testing.T) {
	r := newReceiver(t)
	ap := netip.MustParseAddrPort(r.Listener.Addr().String())
	g := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	g.DenyHostPorts(PortRange{ap.Port(), ap.Port()})
	s := NewSender(g)
	t.Cleanup(s.Close)
	as, ok := deliver(s, "http://localhost:"+strconv.Itoa(int(ap.Port()))+"/programs")
	if ok || r.count() != 0 || len(as) != 1 || !strings.Contains(as[0].Err, "the Host's own") {
		t.Fatalf("delivered %v, the Host's port got %d requests; attempts %+v", ok, r.count(), as)
	}
}

// receiver is a webhook receiver on loopback that answers with the
// statuses given, in turn (200 after the last), and keeps what it got.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []int
	got      []*http.Request
	bodies   [][]byte
	redirect string
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req)
		r.bodies = append(r.bodies, b)
		status := http.StatusOK
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		redirect := r.redirect
		r.mu.Unlock()
		if redirect != "" {
			http.Redirect(w, req, redirect, http.StatusFound)
			return
		}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// testSender sends through a guard that allows only 127.0.0.1, with a
// fake sleep that records the waits.
func testSender(t *testing.T) (*Sender, *[]time.Duration) {
	s := NewSender(NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}))
	var waits []time.Duration
	s.Sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return ctx.Err() }
	t.Cleanup(s.Close)
	return s, &waits
}

func deliver(s *Sender, url string) ([]Attempt, bool) {
	var as []Attempt
	ok := s.Deliver(context.Background(), url, "whsec_test", Event{ID: NewID(), Kind: Crashed, ProgramID: "p1", ExitCode: code(3)}, func(a Attempt) { as = append(as, a) })
	return as, ok
}

func TestDeliverSigned(t *testing.T) {
	r := newReceiver(t)
	s, _ := testSender(t)
	as, ok := deliver(s, r.URL+"/hook")
	if !ok || len(as) != 1 || as[0].Outcome != Delivered || as[0].Status != 200 {
		t.Fatalf("attempts %+v, delivered %v", as, ok)
	}
	req, body := r.got[0], r.bodies[0]
	if err := Verify("whsec_test", req.Header.Get(SignatureHeader), body, time.Now()); err != nil {
		t.Fatalf("the receiver cannot verify the delivery: %v", err)
	}
	if req.Header.Get("Hershy-Event") != "crashed" || !strings.Contains(string(body), `"exit_code":3`) {
		t.Fatalf("delivery %v %s", req.Header, body)
	}
}

func TestDeliverRetries(t *testing.T) {
	tests := []struct {
		name      string
		answers   []int
		delivered bool
		outcomes  []Outcome
		waits     []time.Duration
	}{
		{"5xx then ok", []int{500, 503}, true, []Outcome{Retrying, Retrying, Delivered}, []time.Duration{2 * time.Second, 4 * time.Second}},
		{"429 honours Retry-After", []int{429}, true, []Outcome{Retrying, Delivered}, []time.Duration{7 * time.Second}},
		{"4xx is final", []int{404}, false, []Outcome{Failed}, nil},
		{"gives up", []int{500, 500, 500, 500, 500, 500, 500}, false,
			[]Outcome{Retrying, Retrying, Retrying, Retrying, Retrying, Failed},
			[]time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, tt.answers...)
			s, waits := testSender(t)
			as, ok := deliver(s, r.URL)
			var outs []Outcome
			for i, a := range as {
				outs = append(outs, a.Outcome)
				if a.N != i+1 {
					t.Errorf("attempt %d numbered %d", i+1, a.N)
				}
			}
			if ok != tt.delivered || !equal(outs, tt.outcomes) || !equal(*waits, tt.waits) {
				t.Fatalf("delivered %v, outcomes %v, waits %v; want %v, %v, %v", ok, outs, *waits, tt.delivered, tt.outcomes, tt.waits)
			}
			if r.count() != len(tt.outcomes) {
				t.Fatalf("the receiver got %d requests for %d attempts", r.count(), len(tt.outcomes))
			}
		})
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDeliverRefusesLoopbackByName is the SSRF attack through a name: the
// URL names "localhost", which resolves to a loopback address the
// operator did not allow. The guard runs on the address dialled, so the
// receiver hears nothing, and the refusal is final (no retries).
func TestDeliverRefusesLoopbackByName(t *testing.T) {
	r := newReceiver(t)
	_, port, _ := net.SplitHostPort(r.Listener.Addr().String())
	s := NewSender(NewGuard(nil))
	t.Cleanup(s.Close)
	var waits int
	s.Sleep = func(context.Context, time.Duration) error { waits++; return nil }
	as, ok := deliver(s, "http://localhost:"+port+"/hook")
	if ok || r.count() != 0 {
		t.Fatalf("delivered %v; the receiver got %d requests", ok, r.count())
	}
	if len(as) != 1 || as[0].Outcome != Failed || !strings.Contains(as[0].Err, "loopback") || waits != 0 {
		t.Fatalf("attempts %+v, %d waits", as, waits)
	}
}

// TestDeliverNoRedirects is the SSRF attack through a redirect: an
// allowed receiver answers 302 to another address. Following it would
// send the Host's request wherever the receiver says.
func TestDeliverNoRedirects(t *testing.T) {
	inner := newReceiver(t)
	outer := newReceiver(t)
	outer.redirect = inner.URL + "/internal"
	s, _ := testSender(t)
	as, ok := deliver(s, outer.URL)
	if ok || inner.count() != 0 {
		t.Fatalf("delivered %v; the redirect's target got %d requests", ok, inner.count())
	}
	if len(as) != 1 || as[0].Outcome != Failed || !strings.Contains(as[0].Err, "redirect") {
		t.Fatalf("attempts %+v", as)
	}
}

func TestDeliverCancelled(t *testing.T) {
	r := newReceiver(t, 500, 500)
	s := NewSender(NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}))
	t.Cleanup(s.Close)
	ctx, cancel := context.WithCancel(context.Background())
	s.Sleep = func(ctx context.Context, d time.Duration) error { cancel(); return sleep(ctx, d) }
	var as []Attempt
	if s.Deliver(ctx, r.URL, "k", Event{ID: "e", Kind: Ping}, func(a Attempt) { as = append(as, a) }) || len(as) != 1 {
		t.Fatalf("attempts after cancel: %+v", as)
	}
}

// TestDeliverBoundsTheAnswer: a hostile receiver's answer costs the Host
// little. A body of a gigabyte is read for its first maxAnswer bytes and
// the connection dropped; headers past 16 KiB fail the attempt.
func TestDeliverBoundsTheAnswer(t *testing.T) {
	t.Run("endless body", func(t *testing.T) {
		var served atomic.Int64
		r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			io.Copy(io.Discard, req.Body)
			w.WriteHeader(http.StatusOK)
			chunk := make([]byte, 64<<10)
			for range (1 << 30) / len(chunk) {
				n, err := w.Write(chunk)
				served.Add(int64(n))
				if err != nil {
					return
				}
			}
		}))
		t.Cleanup(r.Close)
		s, _ := testSender(t)
		if as, ok := deliver(s, r.URL); !ok {
			t.Fatalf("attempts %+v", as)
		}
		r.Close() // waits for the handler: its count is final
		// Socket buffers hold some megabytes past what was read; a
		// gigabyte means the body was read whole.
		if n := served.Load(); n > 64<<20 {
			t.Fatalf("the receiver got %d MiB of its answer out", n>>20)
		}
	})
	t.Run("huge headers", func(t *testing.T) {
		r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Pad", strings.Repeat("a", 100<<10))
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(r.Close)
		s, _ := testSender(t)
		s.Attempts = 1
		if as, ok := deliver(s, r.URL); ok || len(as) != 1 || !strings.Contains(as[0].Err, "header") {
			t.Fatalf("delivered %v; attempts %+v", ok, as)
		}
	})
}
