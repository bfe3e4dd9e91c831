package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"time"
)

// Outcome is what became of one delivery attempt.
type Outcome string

const (
	Delivered Outcome = "delivered" // the receiver answered 2xx
	Retrying  Outcome = "retrying"  // it failed, and will be tried again
	Failed    Outcome = "failed"    // it failed, and will not be tried again
	Dropped   Outcome = "dropped"   // never sent: too many deliveries were pending
)

// Attempt is one try at a delivery, as the delivery log keeps it.
type Attempt struct {
	N       int // 1 for the first try
	At      time.Time
	Status  int    // the receiver's HTTP status; 0 when there was no answer
	Err     string // why it failed
	Took    time.Duration
	Outcome Outcome
}

// Sender posts events to webhooks, signing each attempt and retrying a
// failed one with exponential back-off: Base, doubling to Max, for
// Attempts tries in all. It retries when there was no answer, and on 408,
// 429 and 5xx; any other answer (a 4xx, a redirect) is final, as is an
// address the guard refused.
type Sender struct {
	Client   *http.Client
	Attempts int
	Base     time.Duration
	Max      time.Duration
	// Now and Sleep are the clock; tests give fakes.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Retry defaults.
const (
	DefaultAttempts = 6
	DefaultBase     = 2 * time.Second
	DefaultMax      = 2 * time.Minute
	// attemptTimeout bounds one attempt, from dial to the answer's end.
	attemptTimeout = 15 * time.Second
	// maxAnswer is how much of an answer's body is read (and dropped).
	maxAnswer = 64 << 10
)

// NewSender makes a sender whose connections go through g.
func NewSender(g *Guard) *Sender {
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: g.control}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would hide the address from the guard
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  attemptTimeout,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &Sender{
		Client: &http.Client{
			Transport: tr,
			Timeout:   attemptTimeout,
			// A redirect is an answer, not an instruction: following it
			// would let a receiver send the Host anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Attempts: DefaultAttempts, Base: DefaultBase, Max: DefaultMax,
		Now: time.Now, Sleep: sleep,
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Deliver sends ev to url, signed with secret, until it is delivered, it
// fails for good, or ctx ends. record hears of every attempt. It reports
// whether the receiver took it.
func (s *Sender) Deliver(ctx context.Context, url, secret string, ev Event, record func(Attempt)) bool {
	body, err := json.Marshal(ev)
	if err != nil { // an Event always marshals; say so if not
		record(Attempt{N: 1, At: s.Now(), Err: err.Error(), Outcome: Failed})
		return false
	}
	for n := 1; ; n++ {
		start := s.Now()
		status, retryAfter, err := s.post(ctx, url, secret, ev, body)
		a := Attempt{N: n, At: start, Status: status, Took: s.Now().Sub(start)}
		retry := false
		switch {
		case err != nil:
			a.Err = err.Error()
			var refused *RefusedError
			retry = !errors.As(err, &refused) && ctx.Err() == nil
		case status >= 200 && status < 300:
			a.Outcome = Delivered
			record(a)
			return true
		case status >= 300 && status < 400:
			a.Err = "the receiver redirected; redirects are not followed"
		default:
			a.Err = "the receiver answered " + strconv.Itoa(status)
			retry = status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
		}
		if !retry || n >= s.Attempts {
			a.Outcome = Failed
			record(a)
			return false
		}
		a.Outcome = Retrying
		record(a)
		wait := s.backoff(n)
		if retryAfter > wait {
			wait = min(retryAfter, s.Max)
		}
		if s.Sleep(ctx, wait) != nil {
			return false
		}
	}
}

// backoff is the wait after failed attempt n.
func (s *Sender) backoff(n int) time.Duration {
	d := s.Base
	for i := 1; i < n && d < s.Max; i++ {
		d *= 2
	}
	return min(d, s.Max)
}

// post makes one attempt; it returns the status and the answer's
// Retry-After (in seconds), if any.
func (s *Sender) post(ctx context.Context, url, secret string, ev Event, body []byte) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hershy-webhook/1")
	req.Header.Set("Hershy-Event", string(ev.Kind))
	req.Header.Set("Hershy-Delivery", ev.ID)
	req.Header.Set(SignatureHeader, Sign(secret, s.Now(), body))
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, 0, unwrapURLError(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	var after time.Duration
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		after = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, after, nil
}

// unwrapURLError drops the *url.Error around a transport's error: the URL
// is in the delivery log already.
func unwrapURLError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Close drops the sender's idle connections.
func (s *Sender) Close() { s.Client.CloseIdleConnections() }
