package ui_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/api"
	"github.com/hershyorg/hershy/internal/driver/fake"
	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/stats"
	"github.com/hershyorg/hershy/internal/store"
	"github.com/hershyorg/hershy/internal/ui"
)

// The dashboard's tests run a Host on the in-memory engine (hosttest), the
// API over it, and the dashboard over the API, served together as hershy
// serve serves them (ui.Mount), on a loopback httptest server. A "browser"
// here is an HTTP client that keeps the dashboard's cookies by hand and
// sends what a browser sends (Origin, form fields), so that each test can
// also send what a browser would not.

// Hostile strings a program (or its user) controls: they must come out of
// every page escaped.
const (
	hostileLog    = `<script>alert("log")</script>`
	hostileVar    = `<img src=x onerror=alert("var")>`
	hostileName   = `<b id="varname">`
	hostileSource = `</code></pre><script>alert("src")</script>`
)

// watcherAPI is the fake program's WatcherAPI: it answers with hostile
// values, serves an HTML page with a script at /watcher/evil, and records
// the messages it is sent.
type watcherAPI struct {
	mu   sync.Mutex
	sent []string
}

func (wa *watcherAPI) messages() []string {
	wa.mu.Lock()
	defer wa.mu.Unlock()
	return append([]string(nil), wa.sent...)
}

func (wa *watcherAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	js := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	switch r.URL.Path {
	case "/watcher/ready":
		js(map[string]any{"ready": true})
	case "/watcher/status":
		js(map[string]any{"state": "Ready", "isRunning": true, "uptime": "1s", "runs": 7, "lastError": hostileLog})
	case "/watcher/varState":
		js(map[string]any{"variables": map[string]any{hostileName: hostileVar}, "count": 1})
	case "/watcher/watching":
		js(map[string]any{"details": []map[string]any{{"name": hostileName, "kind": "flow", "hasValue": true}}, "count": 1})
	case "/watcher/message":
		var b struct{ Content string }
		json.NewDecoder(r.Body).Decode(&b)
		wa.mu.Lock()
		wa.sent = append(wa.sent, b.Content)
		wa.mu.Unlock()
		js(map[string]any{"status": "message sent"})
	case "/watcher/evil":
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<html><script>alert(document.cookie)</script></html>`)
	default:
		js(map[string]any{})
	}
}

type env struct {
	t     *testing.T
	h     *host.Host
	d     *hosttest.Fake
	wa    *watcherAPI
	srv   *httptest.Server
	admin string
	alice string
	bob   string
}

// newEnv starts the Host (its Dockerfile programs run the hostile
// WatcherAPI and log a hostile line), the API and the dashboard, with
// tokens for the admin, alice and bob. tls serves it over HTTPS.
func newEnv(t *testing.T, tls bool) *env {
	t.Helper()
	return newEnvWith(t, tls, ui.Options{})
}

// newEnvWith is newEnv with the dashboard's options.
func newEnvWith(t *testing.T, tls bool, uo ui.Options) *env {
	t.Helper()
	wa := &watcherAPI{}
	d := hosttest.NewFake(t, fake.Options{Program: fake.Script{Output: []string{hostileLog}, API: wa}.Program()})
	dir := t.TempDir()
	h := d.Open(t, dir, func(o *host.Options) {
		o.Backoff = lifecycle.Backoff{Base: time.Second, Max: 4 * time.Second, HealthyReset: time.Hour}
		// Samples come quickly, so that charts have something to draw.
		o.Stats = stats.Policy{FineStep: 100 * time.Millisecond, FineKeep: time.Hour, CoarseStep: time.Second, CoarseKeep: 24 * time.Hour}
		o.HealthEvery = 20 * time.Millisecond
		o.Alerts.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} // the webhooks' receivers
	})
	e := &env{t: t, h: h, d: d, wa: wa}
	ctx := context.Background()
	var err error
	if e.admin, _, _, err = h.Tokens().EnsureAdmin(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if e.alice, _, err = h.Tokens().Create(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if e.bob, _, err = h.Tokens().Create(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	a, err := api.New(h, api.Options{DataDir: dir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	uo.Version = "test"
	dash, err := ui.New(a, uo)
	if err != nil {
		t.Fatal(err)
	}
	if tls {
		e.srv = httptest.NewTLSServer(ui.Mount(a, dash))
	} else {
		e.srv = httptest.NewServer(ui.Mount(a, dash))
	}
	t.Cleanup(func() {
		e.srv.Close()
		a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rows, _, _ := h.List(ctx, store.ProgramFilter{})
		for _, r := range rows {
			h.Delete(ctx, r.ID)
		}
	})
	return e
}

// deploy makes a Dockerfile program of user's (it runs the hostile
// WatcherAPI) and waits until it is Ready.
func (e *env) deploy(user string) string {
	e.t.Helper()
	ctx := context.Background()
	p, err := e.h.Create(ctx, hosttest.AppProgram(user, hostileSource+"\n"+user+"\n"))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.h.Start(ctx, p.ID); err != nil {
		e.t.Fatal(err)
	}
	hosttest.WaitState(e.t, e.h, p.ID, lifecycle.Ready, 30*time.Second)
	return p.ID
}

func (e *env) state(id string) lifecycle.State {
	e.t.Helper()
	p, err := e.h.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return p.State
}

// browser is one signed-in (or not) browser.
type browser struct {
	e       *env
	c       *http.Client
	cookies map[string]string
	csrf    string // the session's CSRF token, from the page's meta tag
	origin  string // sent as Origin on unsafe requests ("" none)
}

func (e *env) browser() *browser {
	c := e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, c: c, cookies: map[string]string{}, origin: e.srv.URL}
}

type answer struct {
	resp *http.Response
	body string
}

func (a answer) code() int { return a.resp.StatusCode }

// do sends a request with the browser's cookies; Set-Cookie answers are
// kept (and a cookie with Max-Age<0 dropped).
func (b *browser) do(method, path string, body io.Reader, hdr ...string) answer {
	b.e.t.Helper()
	r, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	for name, v := range b.cookies {
		r.AddCookie(&http.Cookie{Name: name, Value: v})
	}
	if method != http.MethodGet && b.origin != "" {
		r.Header.Set("Origin", b.origin)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := b.c.Do(r)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return answer{resp, string(data)}
}

func (b *browser) get(path string) answer { return b.do(http.MethodGet, path, nil) }

// post sends a form; csrf "" sends none.
func (b *browser) post(path string, form url.Values, hdr ...string) answer {
	b.e.t.Helper()
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()),
		append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
}

var (
	hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	metaCSRF   = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
)

// signIn signs in with token as a browser would: the sign-in page, then
// its form.
func (b *browser) signIn(token string) answer {
	b.e.t.Helper()
	page := b.get("/ui/signin")
	m := hiddenCSRF.FindStringSubmatch(page.body)
	if page.code() != 200 || m == nil {
		b.e.t.Fatalf("sign-in page: %d %.300s", page.code(), page.body)
	}
	a := b.post("/ui/signin", url.Values{"csrf": {m[1]}, "token": {token}})
	if a.code() == http.StatusSeeOther {
		home := b.get("/ui/")
		if mm := metaCSRF.FindStringSubmatch(home.body); mm != nil {
			b.csrf = mm[1]
		}
	}
	return a
}

// signedIn is a browser signed in with token.
func (e *env) signedIn(token string) *browser {
	e.t.Helper()
	b := e.browser()
	if a := b.signIn(token); a.code() != http.StatusSeeOther || b.csrf == "" {
		e.t.Fatalf("sign-in: %d %.300s", a.code(), a.body)
	}
	return b
}
