package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/ui"
)

// TestSessionCookie: sign-in sets a session cookie that scripts cannot
// read (HttpOnly), other sites cannot send (SameSite=Strict), that is
// limited to /ui/, Secure over TLS only, and holds a random id, never the
// token. No page shows the token. Sign-out ends the session.
func TestSessionCookie(t *testing.T) {
	for _, tls := range []bool{false, true} {
		e := newEnv(t, tls)
		b := e.browser()
		a := b.signIn(e.alice)
		if a.code() != http.StatusSeeOther || a.resp.Header.Get("Location") != "/ui/" {
			t.Fatalf("tls %v: sign-in: %d %s", tls, a.code(), a.resp.Header.Get("Location"))
		}
		var sc *http.Cookie
		for _, c := range a.resp.Cookies() {
			if c.Name == "hershy_session" {
				sc = c
			}
		}
		if sc == nil {
			t.Fatalf("tls %v: no session cookie in %v", tls, a.resp.Header["Set-Cookie"])
		}
		if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/ui/" || sc.Secure != tls {
			t.Errorf("tls %v: cookie attributes: %s", tls, sc.String())
		}
		if len(sc.Value) != 43 || strings.Contains(sc.Value, e.alice) {
			t.Errorf("tls %v: the cookie is not a 256-bit random id: %q", tls, sc.Value)
		}
		for _, p := range []string{"/ui/", "/ui/deploy", "/ui/signin"} {
			if got := b.get(p); strings.Contains(got.body, e.alice) {
				t.Errorf("tls %v: %s shows the token", tls, p)
			}
		}
		home := b.get("/ui/")
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
			if home.resp.Header.Get(h) == "" {
				t.Errorf("tls %v: no %s on a page", tls, h)
			}
		}
		if cc := home.resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("tls %v: page Cache-Control %q", tls, cc)
		}
		if csp := home.resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("tls %v: CSP %q", tls, csp)
		}
		if strings.Contains(home.body, "<script>") {
			t.Errorf("tls %v: a page has an inline script", tls)
		}
		old := b.cookies["hershy_session"]
		if a := b.post("/ui/signout", url.Values{"csrf": {b.csrf}}); a.code() != http.StatusSeeOther {
			t.Fatalf("tls %v: sign-out: %d", tls, a.code())
		}
		b.cookies["hershy_session"] = old // a stolen copy of the cookie is dead too
		if a := b.get("/ui/"); a.code() != http.StatusSeeOther || a.resp.Header.Get("Location") != "/ui/signin" {
			t.Errorf("tls %v: after sign-out: %d %s", tls, a.code(), a.resp.Header.Get("Location"))
		}
	}
}

// TestSigninRefusesBadTokens: a wrong token gets a clear message and no
// session.
func TestSigninRefusesBadTokens(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	a := b.signIn("hsy_not-a-real-token")
	if a.code() != http.StatusUnauthorized || !strings.Contains(a.body, "did not accept that token") {
		t.Errorf("bad token: %d %.300s", a.code(), a.body)
	}
	if _, ok := b.cookies["hershy_session"]; ok {
		t.Error("a bad token got a session")
	}
	if a := b.get("/ui/"); a.code() != http.StatusSeeOther {
		t.Errorf("after a refused sign-in: %d", a.code())
	}
}

// TestWithoutSession: no session, no dashboard: pages redirect to the
// sign-in page, actions and the API pass-through are refused, and a forged
// session cookie is no session.
func TestWithoutSession(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	for _, cookie := range []string{"", "forged-session-id-0123456789012345678901234"} {
		b := e.browser()
		if cookie != "" {
			b.cookies["hershy_session"] = cookie
		}
		for _, p := range []string{"/ui/", "/ui/programs/" + id, "/ui/programs/" + id + "/logs", "/ui/admin"} {
			if a := b.get(p); a.code() != http.StatusSeeOther || a.resp.Header.Get("Location") != "/ui/signin" {
				t.Errorf("GET %s without a session: %d %s", p, a.code(), a.resp.Header.Get("Location"))
			}
		}
		if a := b.post("/ui/programs/"+id+"/stop", url.Values{"csrf": {"x"}}); a.code() != http.StatusForbidden {
			t.Errorf("POST stop without a session: %d", a.code())
		}
		for _, p := range []string{"/ui/api/programs", "/ui/api/programs/" + id, "/ui/api/events"} {
			if a := b.get(p); a.code() != http.StatusUnauthorized || strings.Contains(a.body, id) {
				t.Errorf("GET %s without a session: %d %.200s", p, a.code(), a.body)
			}
		}
	}
	if s := e.state(id); s != lifecycle.Ready {
		t.Errorf("the program is %s after refused requests", s)
	}
}

// TestCSRF: a state-changing request needs the session's CSRF token and
// our own origin; each forged form is refused with 403 and changes
// nothing, and the real one works.
func TestCSRF(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	b := e.signedIn(e.alice)
	stop := "/ui/programs/" + id + "/stop"
	cases := []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"no token", url.Values{}, nil},
		{"forged token", url.Values{"csrf": {"AAAA" + b.csrf[4:]}}, nil},
		{"another session's token", url.Values{"csrf": {e.signedIn(e.alice).csrf}}, nil},
		{"cross-origin", url.Values{"csrf": {b.csrf}}, []string{"Origin", "http://evil.example"}},
		{"cross-origin by Referer", url.Values{"csrf": {b.csrf}}, []string{"Origin", "", "Referer", "http://evil.example/page"}},
		{"opaque origin", url.Values{"csrf": {b.csrf}}, []string{"Origin", "null"}},
		{"no Origin nor Referer", url.Values{"csrf": {b.csrf}}, []string{"Origin", ""}},
		{"other scheme", url.Values{"csrf": {b.csrf}}, []string{"Origin", strings.Replace(e.srv.URL, "http:", "https:", 1)}},
	}
	for _, c := range cases {
		a := b.post(stop, c.form, c.hdr...)
		if a.code() != http.StatusForbidden || !strings.Contains(a.body, "Refused") {
			t.Errorf("%s: %d %.200s", c.name, a.code(), a.body)
		}
	}
	// The script's requests: the header, through the pass-through too.
	if a := b.do("POST", "/ui/api/programs/"+id+"/stop", nil, "X-CSRF-Token", "forged"); a.code() != http.StatusForbidden {
		t.Errorf("pass-through with a forged header: %d %.200s", a.code(), a.body)
	}
	if a := b.do("POST", "/ui/api/programs/"+id+"/stop", nil); a.code() != http.StatusForbidden {
		t.Errorf("pass-through without the header: %d %.200s", a.code(), a.body)
	}
	// An upload whose first part is not the token.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("files", "main.go")
	fw.Write([]byte("package main\n"))
	mw.WriteField("csrf", b.csrf)
	mw.Close()
	if a := b.do("POST", "/ui/deploy", &body, "Content-Type", mw.FormDataContentType()); a.code() != http.StatusForbidden {
		t.Errorf("upload with the token after a file: %d", a.code())
	}
	if s := e.state(id); s != lifecycle.Ready {
		t.Fatalf("a refused request changed the program: %s", s)
	}
	if a := b.post(stop, url.Values{"csrf": {b.csrf}}); a.code() != http.StatusSeeOther {
		t.Fatalf("the real stop: %d %.300s", a.code(), a.body)
	}
	hosttest.WaitState(t, e.h, id, lifecycle.Stopped, 30*time.Second)
	if a := b.do("POST", "/ui/api/programs/"+id+"/start", nil, "X-CSRF-Token", b.csrf); a.code() != http.StatusOK {
		t.Fatalf("the script's start: %d %.300s", a.code(), a.body)
	}
	hosttest.WaitState(t, e.h, id, lifecycle.Ready, 30*time.Second)
}

// TestSigninCSRF: the sign-in form is protected too (login CSRF would sign
// a victim in to the attacker's account): it needs our origin and the
// value of its own cookie.
func TestSigninCSRF(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	page := b.get("/ui/signin")
	tok := hiddenCSRF.FindStringSubmatch(page.body)[1]
	if a := b.post("/ui/signin", url.Values{"csrf": {tok}, "token": {e.alice}}, "Origin", "http://evil.example"); a.code() != http.StatusForbidden {
		t.Errorf("cross-origin sign-in: %d", a.code())
	}
	if a := b.post("/ui/signin", url.Values{"csrf": {"forged"}, "token": {e.alice}}); a.code() != http.StatusForbidden {
		t.Errorf("sign-in with a forged form token: %d", a.code())
	}
	delete(b.cookies, "hershy_signin")
	if a := b.post("/ui/signin", url.Values{"csrf": {tok}, "token": {e.alice}}); a.code() != http.StatusForbidden {
		t.Errorf("sign-in without the form's cookie: %d", a.code())
	}
	if _, ok := b.cookies["hershy_session"]; ok {
		t.Error("a refused sign-in made a session")
	}
}

// TestSecondUser: bob's dashboard shows none of alice's programs and
// cannot act on them, by page, form or pass-through.
func TestSecondUser(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	alice, bob := e.signedIn(e.alice), e.signedIn(e.bob)
	if a := alice.get("/ui/"); !strings.Contains(a.body, id) {
		t.Fatalf("alice's list lacks her program: %.500s", a.body)
	}
	if a := bob.get("/ui/"); a.code() != 200 || strings.Contains(a.body, id) {
		t.Errorf("bob's list: %d, shows alice's program: %v", a.code(), strings.Contains(a.body, id))
	}
	for _, p := range []string{"", "/logs", "/logs.txt", "/build", "/source", "/watcher", "/resources", "/delete"} {
		a := bob.get("/ui/programs/" + id + p)
		if a.code() != http.StatusNotFound || strings.Contains(a.body, "alice\n") || strings.Contains(a.body, html.EscapeString(hostileLog)) {
			t.Errorf("bob GET %s: %d %.200s", p, a.code(), a.body)
		}
	}
	for _, verb := range []string{"stop", "restart", "delete"} {
		form := url.Values{"csrf": {bob.csrf}, "confirm": {id}}
		a := bob.post("/ui/programs/"+id+"/"+verb, form)
		if a.code() != http.StatusSeeOther {
			t.Errorf("bob POST %s: %d", verb, a.code())
		}
		if s := e.state(id); s != lifecycle.Ready {
			t.Fatalf("bob's %s changed alice's program: %s", verb, s)
		}
	}
	if a := bob.post("/ui/programs/"+id+"/message", url.Values{"csrf": {bob.csrf}, "content": {"from bob"}}); a.code() != http.StatusSeeOther {
		t.Errorf("bob's message: %d", a.code())
	}
	if a := bob.post("/ui/programs/"+id+"/secrets", url.Values{"csrf": {bob.csrf}, "name": {"k"}, "value": {"v"}}); a.code() != http.StatusSeeOther {
		t.Errorf("bob's secret: %d", a.code())
	}
	for _, m := range e.wa.messages() {
		if m == "from bob" {
			t.Error("bob's message reached alice's program")
		}
	}
	if secs, _ := e.h.Secrets(context.Background(), id); len(secs) != 0 {
		t.Errorf("bob set a secret on alice's program: %v", secs)
	}
	for _, p := range []string{"/ui/api/programs/" + id, "/ui/api/programs/" + id + "/logs", "/ui/api/programs/" + id + "/proxy/watcher/status"} {
		if a := bob.get(p); a.code() != http.StatusNotFound {
			t.Errorf("bob pass-through %s: %d %.200s", p, a.code(), a.body)
		}
	}
	if a := bob.get("/ui/api/programs"); strings.Contains(a.body, id) {
		t.Errorf("bob's pass-through list shows alice's program")
	}
	if a := bob.get("/ui/admin"); a.code() != http.StatusForbidden {
		t.Errorf("bob's admin page: %d", a.code())
	}
	if a := bob.post("/ui/admin/tokens", url.Values{"csrf": {bob.csrf}, "user_id": {"mallory"}}); a.code() != http.StatusSeeOther || strings.Contains(a.body, "hsy_") {
		t.Errorf("bob's token create: %d", a.code())
	}
	if toks, _ := e.h.Tokens().List(context.Background(), "mallory"); len(toks) != 0 {
		t.Error("bob made a token")
	}
}

// TestHostileContentEscaped: what a program chose (its log lines, its
// WatcherAPI's names and values, its source) appears escaped, never as
// markup, on every page that shows it.
func TestHostileContentEscaped(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	b := e.signedIn(e.alice)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(b.get("/ui/api/programs/"+id+"/logs").body, "alert"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the program's log line never arrived")
		}
	}
	pages := map[string][]string{
		"/logs":                      {hostileLog},
		"/logs?q=alert":              {hostileLog},
		"/watcher":                   {hostileVar, hostileName, hostileLog},
		"/watcher?part=part-watcher": {hostileVar, hostileName},
		"/source?file=app":           {hostileSource},
	}
	for p, raws := range pages {
		a := b.get("/ui/programs/" + id + p)
		if a.code() != 200 {
			t.Errorf("%s: %d %.300s", p, a.code(), a.body)
			continue
		}
		for _, raw := range raws {
			if strings.Contains(a.body, raw) {
				t.Errorf("%s holds %q unescaped", p, raw)
			}
			if !strings.Contains(a.body, html.EscapeString(raw)) && !strings.Contains(a.body, escapedJSON(raw)) &&
				!strings.Contains(html.UnescapeString(a.body), raw) {
				t.Errorf("%s does not show %q (escaped)", p, raw)
			}
		}
	}
	// The download is a file, never a page.
	if a := b.get("/ui/programs/" + id + "/logs.txt"); !strings.HasPrefix(a.resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.HasPrefix(a.resp.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(a.body, hostileLog) {
		t.Errorf("download: %v %.200s", a.resp.Header, a.body)
	}
}

// escapedJSON is how a JSON value shown in a page reads once escaped: the
// string quoted, then HTML-escaped.
func escapedJSON(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return html.EscapeString(strings.TrimSpace(b.String()))
}

// TestPassThroughFence: a program's WatcherAPI answer reaches the browser
// on the dashboard's own origin, so an HTML answer must not become a page
// of ours: its type is replaced and a sandboxing CSP is set.
func TestPassThroughFence(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	b := e.signedIn(e.alice)
	a := b.get("/ui/api/programs/" + id + "/proxy/watcher/evil")
	if a.code() != 200 || !strings.Contains(a.body, "<script>") {
		t.Fatalf("the proxied answer: %d %.200s", a.code(), a.body)
	}
	if ct := a.resp.Header.Get("Content-Type"); strings.Contains(ct, "html") {
		t.Errorf("a program's HTML is served as %q", ct)
	}
	if csp := a.resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("no sandbox CSP on a proxied answer: %q", csp)
	}
	if a.resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff on a proxied answer")
	}
	if a.resp.Header.Get("Set-Cookie") != "" {
		t.Error("a proxied answer sets a cookie")
	}
	// JSON keeps its type (the script reads it).
	if a := b.get("/ui/api/programs/" + id); a.resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("JSON through the pass-through: %q", a.resp.Header.Get("Content-Type"))
	}
}

// clock is a settable time for session expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestSessionExpiry: a session ends after its idle time without use, and
// after its absolute lifetime however much it is used.
func TestSessionExpiry(t *testing.T) {
	c := &clock{now: time.Now()}
	e := newEnvWith(t, false, ui.Options{SessionIdle: time.Hour, SessionMax: 3 * time.Hour, Now: c.Now})
	signedOut := func(b *browser) bool {
		a := b.get("/ui/")
		return a.code() == http.StatusSeeOther && a.resp.Header.Get("Location") == "/ui/signin"
	}
	b := e.signedIn(e.alice)
	c.advance(59 * time.Minute)
	if signedOut(b) {
		t.Fatal("signed out before the idle time")
	}
	c.advance(61 * time.Minute)
	if !signedOut(b) {
		t.Fatal("still signed in after an hour idle")
	}
	b = e.signedIn(e.alice)
	for i := 0; i < 5; i++ { // used every 50 minutes: never idle
		c.advance(50 * time.Minute)
		if i < 3 && signedOut(b) {
			t.Fatalf("signed out after %d min of use", (i+1)*50)
		}
	}
	if !signedOut(b) {
		t.Fatal("still signed in past the absolute lifetime")
	}
}
