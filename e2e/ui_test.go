package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/hershyorg/hershy/internal/ui/browsertest"
)

// TestDashboard is the dashboard as a user lives it, in a real headless
// Chromium against a real `hershy serve`, once per runtime: sign in, deploy
// simple-counter from its files and watch the build land on the program
// when it is Ready, read its watched variable, send it a message and see
// the answer in its logs, follow the logs live, see the resource chart,
// stop and delete it. A second user sees none of it, and a browser without
// the session, or a form with a forged CSRF token, is refused. Screenshots
// of each page are kept as artifacts ($HERSHY_ARTIFACTS).
func TestDashboard(t *testing.T) { forEachRuntime(t, testDashboard) }

var programPage = regexp.MustCompile(`/ui/programs/([a-z0-9-]+)$`)

func testDashboard(t *testing.T, rt string) {
	h := startHost(t, rt)
	alice, bob := h.user("alice"), h.user("bob")
	ui := h.url() + "/ui/"

	// A build under gVisor can take a minute on a small machine: the
	// waits that span one are long; a failure still says what it saw.
	b := browsertest.New(t, browsertest.Options{Timeout: 4 * time.Minute})
	signIn(b, ui, alice.token)
	b.WaitText("main", "No programs yet")
	b.Screenshot("programs-empty")
	var session *network.Cookie
	for _, c := range b.Cookies() {
		if c.Name == "hershy_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/ui/" {
		t.Fatalf("the browser's session cookie: %+v", session)
	}
	if strings.Contains(session.Value, alice.token) || browsertest.Eval[string](b, `document.cookie`) != "" {
		t.Fatal("a script can read the session cookie, or it holds the token")
	}

	// Deploy a folder, as a user picks it: the browser sends every file
	// under the folder's name, and the program's source is the folder's
	// content.
	b.Navigate(ui + "deploy")
	checkNamed(t, b, "the deploy page")
	files := readSource(t, filepath.Join(examplesDir, "simple-counter"))
	folder := filepath.Join(t.TempDir(), "simple-counter")
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(folder, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(folder, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.UploadFolder("#folder", folder)
	b.Screenshot("deploy")
	b.Click("#deploy-form button[type=submit]")
	b.WaitText("#build-h", "Build")
	b.Screenshot("build")
	// The build page follows the build over the event stream and opens the
	// program when it is Ready.
	b.WaitText("#actions-h", "Actions")
	m := programPage.FindStringSubmatch(b.URL())
	if m == nil {
		t.Fatalf("after the build the browser is at %s, not a program page", b.URL())
	}
	id := m[1]
	p := &program{t: t, h: h, c: alice, name: "simple-counter", id: id}
	if got := p.get(); got.State != "Ready" || got.Runtime != rt {
		t.Fatalf("the program is %s under %s", got.State, got.Runtime)
	}
	if src, err := alice.GetSource(context.Background(), id); err != nil || len(src.Files) != len(files) || src.Files["main.go"] != files["main.go"] {
		t.Fatalf("the folder's upload is not the program's source: %v, %d files of %d", err, len(src.Files), len(files))
	}
	b.WaitText(".phead-state", "Ready")
	b.Screenshot("program")
	checkNamed(t, b, "the program page")

	// The list shows it, live.
	b.Navigate(ui)
	b.WaitText("#programs", id)
	b.WaitText("#programs", "Ready")
	checkNamed(t, b, "the programs page")

	// Read a variable: the tick is watched and initialised.
	b.Navigate(ui + "programs/" + id + "/watcher")
	b.WaitText("#vars", "tick")
	b.WaitText("#vars", "yes")
	b.Screenshot("watcher")
	checkNamed(t, b, "the watcher page")

	// Send a message and see its effect: the program logs its counter.
	sent := time.Now()
	b.Fill("#message", "status")
	b.Click(".console-form button[type=submit]")
	b.WaitText("#sent", "message sent")
	p.waitLogContains(sent, "status: counter is", 30*time.Second) // captured by the Host
	b.Navigate(ui + "programs/" + id + "/logs")
	b.WaitText("#log-lines", "status: counter is")

	// Follow the logs: a line written after the page loaded appears without
	// a reload.
	b.Click("#follow")
	b.WaitText("#follow-status", "Following")
	p.send("reset")
	b.WaitText("#log-lines", "counter: 0")
	if marker := browsertest.Eval[string](b, `document.getElementById('follow').getAttribute('aria-pressed')`); marker != "true" {
		t.Errorf("the follow button says %q", marker)
	}
	b.Screenshot("logs")

	// The resource history: the charts fill as the Host samples.
	b.Navigate(ui + "programs/" + id + "/resources")
	if statsServed(t, alice, id) {
		b.WaitVisible(".charts svg")
		b.WaitText(".charts", "CPU")
		checkNamed(t, b, "the resources page")
		b.Screenshot("resources")
	} else {
		b.WaitText("main", "No resource history yet")
		t.Log("this Host serves no /stats yet: the page says so")
	}

	// Source, highlighted.
	b.Navigate(ui + "programs/" + id + "/source?file=main.go")
	b.WaitVisible(".hl")
	b.Screenshot("source")

	// Alerts: a webhook added in the browser shows its secret once, and
	// goes with its Remove button.
	b.Navigate(ui + "webhooks")
	b.WaitText("main", "No webhook yet")
	b.Fill("#hook-url", "https://hooks.example.com/hershy")
	b.Click("#hook-form button[type=submit]")
	b.WaitVisible("#new-secret")
	if s := b.Value("#new-secret"); !strings.HasPrefix(s, "whsec_") {
		t.Fatalf("the new webhook's secret: %q", s)
	}
	b.Screenshot("alerts")
	b.Navigate(ui + "webhooks")
	b.Click(`button[aria-label^="Remove webhook"]`)
	b.WaitText("main", "No webhook yet")

	// The admin's pages.
	adm := browsertest.New(t, browsertest.Options{})
	signIn(adm, ui, h.admin.Token)
	adm.Navigate(ui + "admin")
	adm.WaitText("#tokens", "alice")
	adm.WaitText("main", "Programs by state")
	adm.Screenshot("admin")
	adm.Navigate(ui)
	adm.WaitText("#programs", id) // the admin sees every user's
	adm.Viewport(390, 844)
	adm.Screenshot("programs-phone")
	adm.Click("#theme-toggle")
	adm.Screenshot("programs-phone-theme-toggled")

	// A second user sees none of alice's programs and cannot open them.
	bb := browsertest.New(t, browsertest.Options{})
	signIn(bb, ui, bob.token)
	bb.WaitText("main", "No programs yet")
	if strings.Contains(bb.Text("main"), id) {
		t.Fatal("bob's list shows alice's program")
	}
	bb.Navigate(ui + "programs/" + id)
	bb.WaitText("main", "No program "+id+" that you may see")
	if errs := bb.TakeConsoleErrors(); len(errs) != 1 || !strings.Contains(errs[0], "404") {
		t.Errorf("bob's browser logged %q, want the one 404 of alice's program", errs)
	}

	// No session: the browser is sent to sign in, and a script's request
	// is refused.
	anon := browsertest.New(t, browsertest.Options{AllowConsoleErrors: true})
	anon.Navigate(ui + "programs/" + id)
	anon.WaitText("h1", "Sign in")
	if code := fetchStatus(anon, "/ui/api/programs/"+id+"/stop", "POST"); code != http.StatusUnauthorized {
		t.Errorf("a stop without a session: %d", code)
	}

	// A forged CSRF token: the form is refused and nothing changes.
	forger := browsertest.New(t, browsertest.Options{AllowConsoleErrors: true})
	signIn(forger, ui, alice.token)
	forger.Navigate(ui + "programs/" + id)
	forger.WaitVisible(`form[action$="/stop"] button`)
	browsertest.Eval[bool](forger, `(() => { const f = document.querySelector('form[action$="/stop"]');
		f.querySelector('input[name=csrf]').value = 'forged-' + Math.random();
		setTimeout(() => f.submit(), 0); return true })()`)
	forger.WaitText("main", "security token is missing or wrong")
	if code := fetchStatus(forger, "/ui/api/programs/"+id+"/stop", "POST"); code != http.StatusForbidden {
		t.Errorf("a script's stop without the CSRF header: %d", code)
	}
	if got := p.get(); got.State != "Ready" {
		t.Fatalf("a refused request changed the program: %s", got.State)
	}

	// Stop, then delete with confirmation.
	b.Navigate(ui + "programs/" + id)
	b.Click(`form[action$="/stop"] button`)
	b.WaitText(".phead-state", "Stopped")
	b.Click(`a[href$="/delete"]`)
	b.WaitText("h1", "Delete program")
	b.Fill("#confirm", id)
	b.Click(`form[action$="/delete"] button[type=submit]`)
	b.WaitText(".flash", "deleted")
	b.WaitText("main", "No programs yet")
	if _, err := alice.GetProgram(context.Background(), id); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("after the delete: %v", err)
	}
}

// checkNamed fails the test for a control, link or image of the page that
// a screen reader would announce without a name.
func checkNamed(t *testing.T, b *browsertest.Browser, page string) {
	t.Helper()
	named := map[string]bool{"button": true, "link": true, "textbox": true, "searchbox": true, "combobox": true,
		"checkbox": true, "image": true, "img": true, "heading": true, "navigation": true, "table": true}
	n := 0
	for _, node := range b.Accessibility() {
		if named[node.Role] {
			n++
			if strings.TrimSpace(node.Name) == "" {
				t.Errorf("%s: a %s without an accessible name", page, node.Role)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s: no controls in the accessibility tree", page)
	}
}

// signIn signs a browser in with a token through the sign-in form.
func signIn(b *browsertest.Browser, ui, token string) {
	b.Navigate(ui)
	b.WaitText("h1", "Sign in")
	b.Fill("#token", token)
	b.Click(`form[action="/ui/signin"] button[type=submit]`)
	b.WaitText("h1", "Programs")
}

// fetchStatus is the status a fetch from the page's script gets.
func fetchStatus(b *browsertest.Browser, path, method string) int {
	return browsertest.Run(b, chromedp.Evaluate[int](`fetch(`+jsQuote(path)+`, {method: `+jsQuote(method)+`, credentials: 'same-origin'}).then(r => r.status)`,
		chromedp.EvalAwaitPromise))
}

func jsQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `\'`) + "'"
}

// statsServed reports whether the Host serves the resource history.
func statsServed(t *testing.T, u *user, id string) bool {
	req, _ := http.NewRequest(http.MethodGet, u.BaseURL+"/programs/"+id+"/stats?since=1h", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
