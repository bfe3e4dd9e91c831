package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Sessions: the browser holds only a random 256-bit id in an HttpOnly
// cookie; the bearer token it stands for stays on the server, so no script
// (ours or an injected one) and no page ever sees it. A session ends after
// an idle period, after an absolute lifetime whatever the activity, or at
// sign-out. Sessions live in memory: a Host restart signs everyone out,
// which is the safe direction.

const (
	sessionCookie = "hershy_session"
	// signinCookie carries the sign-in form's CSRF value (double submit):
	// before sign-in there is no session to keep it in.
	signinCookie = "hershy_signin"
	cookiePath   = "/ui/"
	// csrfField and csrfHeader carry a session's CSRF token in forms and
	// in the dashboard's own fetches.
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"

	// maxSessions bounds the table: sign-ins beyond it push out the
	// least recently used session, so a flood of sign-ins with valid
	// tokens cannot grow the Host's memory without end.
	maxSessions = 10000
	// maxSentPerProgram is how much of the message console's history a
	// session keeps per program.
	maxSentPerProgram = 50
)

// session is one signed-in browser.
type session struct {
	id      string
	token   string // the bearer token; never leaves the server
	csrf    string
	user    string
	admin   bool
	created time.Time

	mu       sync.Mutex
	lastSeen time.Time
	flash    *flash
	sent     map[string][]sentMessage // program id -> messages sent from this session, oldest first
}

// flash is a one-shot notice shown on the next page (after a redirect).
type flash struct {
	Error bool
	Text  string
}

// sentMessage is one message sent from the console, with what came back.
type sentMessage struct {
	At      time.Time
	Content string
	Result  string
	OK      bool
}

func (s *session) setFlash(isErr bool, text string) {
	s.mu.Lock()
	s.flash = &flash{Error: isErr, Text: text}
	s.mu.Unlock()
}

func (s *session) takeFlash() *flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

func (s *session) addSent(programID string, m sentMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string][]sentMessage{}
	}
	l := append(s.sent[programID], m)
	if len(l) > maxSentPerProgram {
		l = l[len(l)-maxSentPerProgram:]
	}
	s.sent[programID] = l
}

// sentTo returns the console history for a program, newest first.
func (s *session) sentTo(programID string) []sentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.sent[programID]
	out := make([]sentMessage, len(l))
	for i, m := range l {
		out[len(l)-1-i] = m
	}
	return out
}

// sessions is the table of signed-in browsers.
type sessions struct {
	idle, max time.Duration
	now       func() time.Time

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(idle, max time.Duration, now func() time.Time) *sessions {
	return &sessions{idle: idle, max: max, now: now, byID: map[string]*session{}}
}

// randomID is 256 bits from the system's CSPRNG, URL-safe.
func randomID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ui: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for a checked token.
func (t *sessions) create(token, user string, admin bool) *session {
	now := t.now()
	s := &session{id: randomID(), token: token, csrf: randomID(), user: user, admin: admin, created: now, lastSeen: now}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	if len(t.byID) >= maxSessions {
		var oldest *session
		for _, x := range t.byID {
			if oldest == nil || x.lastSeen.Before(oldest.lastSeen) {
				oldest = x
			}
		}
		delete(t.byID, oldest.id)
	}
	t.byID[s.id] = s
	return s
}

// get returns the live session with this id and marks it used; an expired
// one is removed.
func (t *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byID[id]
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.expired(s, now) {
		delete(t.byID, id)
		return nil
	}
	s.lastSeen = now
	return s
}

func (t *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) >= t.idle || now.Sub(s.created) >= t.max
}

// sweepLocked drops expired sessions; sign-ins call it, so the table needs
// no goroutine of its own.
func (t *sessions) sweepLocked(now time.Time) {
	for id, s := range t.byID {
		s.mu.Lock()
		dead := t.expired(s, now)
		s.mu.Unlock()
		if dead {
			delete(t.byID, id)
		}
	}
}

func (t *sessions) remove(id string) {
	t.mu.Lock()
	delete(t.byID, id)
	t.mu.Unlock()
}

// cookie makes one of the dashboard's cookies: HttpOnly (no script reads
// it), SameSite=Strict (no other site's page sends it), limited to /ui/,
// Secure when the request came over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: cookiePath, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// sameToken compares two secrets in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sameOrigin reports whether an unsafe request came from the dashboard's
// own pages: its Origin (sent by browsers with every POST and fetch), or
// when absent its Referer, must name this Host, with the scheme the
// request came over. Neither present is refused: a browser always sends
// one of them on a form post or fetch from our pages (Referrer-Policy
// same-origin keeps the Referer for our own origin).
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return false
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" { // "null" (an opaque origin) too
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && u.Host == r.Host
}
