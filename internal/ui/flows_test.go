package ui_test

import (
	"bytes"
	"context"
	"html"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/host/hosttest"
	"github.com/hershyorg/hershy/internal/lifecycle"
	"github.com/hershyorg/hershy/internal/store"
)

// upload posts files (path -> content) as the deploy form does: the CSRF
// field first, then the fields, then the files.
func (b *browser) upload(path string, fields map[string]string, files map[string]string) answer {
	b.e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf", b.csrf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for name, content := range files {
		// The raw path as a browser sends a folder's files
		// (CreateFormFile would escape nothing either).
		fw, err := mw.CreateFormFile("files", name)
		if err != nil {
			b.e.t.Fatal(err)
		}
		fw.Write([]byte(content))
	}
	mw.Close()
	return b.do("POST", path, &body, "Content-Type", mw.FormDataContentType())
}

var programLink = regexp.MustCompile(`^/ui/programs/([a-z0-9-]+)/build$`)

// TestDeployFolder: a folder upload deploys as `hershy deploy` would: the
// folder's own name dropped from every path, .git and ignored files left
// out; the build page follows, and the program becomes Ready.
func TestDeployFolder(t *testing.T) {
	e := newEnv(t, false)
	b := e.signedIn(e.alice)
	src := hosttest.CounterSource(1)
	a := b.upload("/ui/deploy", map[string]string{"restart_policy": "never"}, map[string]string{
		"bot/main.go": src["main.go"], "bot/go.mod": src["go.mod"],
		"bot/.git/config": "[core]\n", "bot/.hershignore": "notes.txt\n", "bot/notes.txt": "private\n",
	})
	m := programLink.FindStringSubmatch(a.resp.Header.Get("Location"))
	if a.code() != http.StatusSeeOther || m == nil {
		t.Fatalf("deploy: %d %s %.300s", a.code(), a.resp.Header.Get("Location"), a.body)
	}
	id := m[1]
	hosttest.WaitState(t, e.h, id, lifecycle.Ready, 30*time.Second)
	files, err := e.h.Source(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	if _, ok := files["main.go"]; !ok || len(files) != 3 {
		t.Errorf("stored source: %v, want main.go, go.mod, .hershignore", names)
	}
	p, _ := e.h.Get(context.Background(), id)
	if p.UserID != "alice" || p.Policy != lifecycle.RestartNever {
		t.Errorf("owner %s, policy %s", p.UserID, p.Policy)
	}
	page := b.get("/ui/programs/" + id + "/build")
	// Ready already: the page shows the build and does not jump away.
	if page.code() != 200 || !strings.Contains(page.body, "Uploaded 3 file(s)") || strings.Contains(page.body, "data-land") {
		t.Errorf("build page: %d %.500s", page.code(), page.body)
	}

	if bl := b.get("/ui/programs/" + id + "/build-log"); bl.code() != 200 || bl.resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("the build log follow of a finished build: %d %v %.300s", bl.code(), bl.resp.Header, bl.body)
	}

	// A path that climbs out is refused, and nothing is made.
	before := e.count()
	a = b.upload("/ui/deploy", nil, map[string]string{"../main.go": src["main.go"], "go.mod": src["go.mod"]})
	if a.code() != http.StatusSeeOther || a.resp.Header.Get("Location") != "/ui/deploy" {
		t.Fatalf("climbing upload: %d %s", a.code(), a.resp.Header.Get("Location"))
	}
	if page := b.get("/ui/deploy"); !strings.Contains(page.body, "not a plain relative path") {
		t.Errorf("no error shown: %.500s", page.body)
	}
	if e.count() != before {
		t.Error("a refused upload made a program")
	}
	// The API's own refusal reaches the user in its words.
	a = b.upload("/ui/deploy", map[string]string{"memory_mib": "999999"}, map[string]string{"main.go": src["main.go"], "go.mod": src["go.mod"]})
	if page := b.get("/ui/deploy"); !strings.Contains(page.body, "per program") {
		t.Errorf("quota error not shown: %d %.500s", a.code(), page.body)
	}
	// A size whose bytes overflow is the form's error, not a negative
	// (unlimited) size sent on.
	a = b.upload("/ui/deploy", map[string]string{"state_mib": "9223372036854775807"}, map[string]string{"main.go": src["main.go"], "go.mod": src["go.mod"]})
	if page := b.get("/ui/deploy"); !strings.Contains(page.body, "is not a positive number of MiB") {
		t.Errorf("overflowing size not refused: %d %.500s", a.code(), page.body)
	}
	if e.count() != before {
		t.Error("a refused upload made a program")
	}
}

func (e *env) count() int {
	rows, _, err := e.h.List(context.Background(), store.ProgramFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(rows)
}

// TestMessageConsole: a message sent from the watcher page reaches the
// program, and the page lists it, escaped, with the program's answer.
func TestMessageConsole(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	b := e.signedIn(e.alice)
	msg := `status <i>now</i>`
	a := b.post("/ui/programs/"+id+"/message", url.Values{"csrf": {b.csrf}, "content": {msg}})
	if a.code() != http.StatusSeeOther {
		t.Fatalf("send: %d %.300s", a.code(), a.body)
	}
	got := e.wa.messages()
	if len(got) != 1 || got[0] != msg {
		t.Fatalf("the program got %q", got)
	}
	page := b.get("/ui/programs/" + id + "/watcher")
	if !strings.Contains(page.body, html.EscapeString(msg)) || strings.Contains(page.body, msg) || !strings.Contains(page.body, "message sent") {
		t.Errorf("console history: %.2000s", page.body)
	}
	// Another session of the same user has its own history.
	if other := e.signedIn(e.alice).get("/ui/programs/" + id + "/watcher"); strings.Contains(other.body, html.EscapeString(msg)) {
		t.Error("a message history shows in another session")
	}
}

// TestAdminTokens: the admin makes a token (shown once), its user signs in
// with it, and a revocation ends that user's session at its next request.
func TestAdminTokens(t *testing.T) {
	e := newEnv(t, false)
	admin := e.signedIn(e.admin)
	a := admin.post("/ui/admin/tokens", url.Values{"csrf": {admin.csrf}, "user_id": {"carol"}})
	m := regexp.MustCompile(`readonly value="([^"]+)"`).FindStringSubmatch(a.body)
	if a.code() != 200 || m == nil {
		t.Fatalf("create: %d %.500s", a.code(), a.body)
	}
	carol := e.signedIn(m[1])
	if again := admin.get("/ui/admin"); strings.Contains(again.body, m[1]) {
		t.Error("the token is shown again")
	}
	toks, err := e.h.Tokens().List(context.Background(), "carol")
	if err != nil || len(toks) != 1 {
		t.Fatalf("carol's tokens: %v %v", toks, err)
	}
	if a := admin.post("/ui/admin/tokens/"+toks[0].ID+"/revoke", url.Values{"csrf": {admin.csrf}}); a.code() != http.StatusSeeOther {
		t.Fatalf("revoke: %d", a.code())
	}
	carol.get("/ui/") // the API refuses the revoked token: the session ends
	if a := carol.get("/ui/"); a.code() != http.StatusSeeOther || a.resp.Header.Get("Location") != "/ui/signin" {
		t.Errorf("carol after revocation: %d %s", a.code(), a.resp.Header.Get("Location"))
	}
}

// TestResourceCharts: once the Host has sampled a program, its resources
// page draws the history as SVG charts and the list shows sparklines;
// the program's name in them is escaped by the chart package.
func TestResourceCharts(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	b := e.signedIn(e.alice)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		page := b.get("/ui/programs/" + id + "/resources")
		if strings.Count(page.body, "<svg") == 5 {
			for _, want := range []string{"CPU of " + id, "Memory of " + id, "Pids of " + id, "/state use of " + id, "Restarts of " + id} {
				if !strings.Contains(page.body, want) {
					t.Errorf("no chart titled %q", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no charts after 20 s: %.1000s", page.body)
		}
	}
	if day := b.get("/ui/programs/" + id + "/resources?window=24h"); day.code() != 200 || !strings.Contains(day.body, `aria-current="page">Last 24 hours`) {
		t.Errorf("the 24 h window: %d", day.code())
	}
	list := b.get("/ui/")
	if !strings.Contains(list.body, "chart-spark") {
		t.Errorf("no sparklines on the list: %.1000s", list.body)
	}
}

// TestAdminHealth: the admin's overview shows the engine and the runtime
// up, and, while the engine is gone, down with what that means.
func TestAdminHealth(t *testing.T) {
	e := newEnv(t, false)
	admin := e.signedIn(e.admin)
	row := regexp.MustCompile(`(?s)<th scope="row" class="mono">(engine|runc|runsc)</th>\s*<td>(.*?)</td>`)
	parts := func() map[string]string {
		page := admin.get("/ui/admin")
		if page.code() != 200 {
			t.Fatalf("admin page: %d", page.code())
		}
		got := map[string]string{}
		for _, m := range row.FindAllStringSubmatch(page.body, -1) {
			got[m[1]] = m[2]
		}
		return got
	}
	got := parts()
	if len(got) != 2 || !strings.Contains(got["engine"], ">up<") || !strings.Contains(got[e.h.Runtime()], ">up<") {
		t.Fatalf("healthy Host: %v", got)
	}
	e.d.Crash(nil)
	defer e.d.Restore()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got = parts()
		if strings.Contains(got["engine"], ">down<") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine is gone, the page says: %v", got)
		}
	}
	if !strings.Contains(got["engine"], "does not answer") {
		t.Errorf("no words for what is down: %q", got["engine"])
	}
}

// TestReleasesPage: the program page lists the releases, newest first,
// and a rollback from it starts the program on the earlier one.
func TestReleasesPage(t *testing.T) {
	e := newEnv(t, false)
	id := e.deploy("alice")
	ctx := context.Background()
	first, _ := e.h.Get(ctx, id)
	src, err := e.h.Source(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	src["extra.txt"] = "release 2\n"
	if _, err := e.h.ReplaceSource(ctx, id, "", src); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn(e.alice)
	page := b.get("/ui/programs/" + id)
	i1, i2 := strings.Index(page.body, "Roll back to release 1"), strings.Index(page.body, "current</span>")
	if i1 < 0 || i2 < 0 || i2 > i1 || strings.Contains(page.body, "Roll back to release 2") {
		t.Fatalf("the releases on the page:\n%.3000s", page.body[max(0, strings.Index(page.body, "Releases")):])
	}
	a := b.post("/ui/programs/"+id+"/rollback", url.Values{"csrf": {b.csrf}, "to": {"1"}})
	if a.code() != http.StatusSeeOther {
		t.Fatalf("rollback: %d %.300s", a.code(), a.body)
	}
	hosttest.WaitState(t, e.h, id, lifecycle.Ready, 30*time.Second)
	if p, _ := e.h.Get(ctx, id); p.BuildID != first.BuildID {
		t.Errorf("after the rollback the build is %s, want release 1's %s", p.BuildID, first.BuildID)
	}
	if page := b.get("/ui/programs/" + id); !strings.Contains(page.body, "rollback to 1") {
		t.Error("the page does not show the rollback's release")
	}
	// Without the session's CSRF token, nothing is rolled back.
	if a := b.post("/ui/programs/"+id+"/rollback", url.Values{"to": {"2"}}); a.code() == http.StatusSeeOther {
		t.Error("a rollback without the CSRF token was accepted")
	}
}

// TestWebhooksPage: a user adds a webhook from the Alerts page and sees its
// secret once; a test event sent from the page reaches the receiver and
// its delivery shows; another user neither sees nor removes it; a refused
// URL is said on the page; without the CSRF token nothing is added.
func TestWebhooksPage(t *testing.T) {
	var got atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer recv.Close()
	e := newEnv(t, false)
	b := e.signedIn(e.alice)
	if page := b.get("/ui/webhooks"); page.code() != 200 || !strings.Contains(page.body, "No webhook yet") {
		t.Fatalf("empty alerts page: %d %.500s", page.code(), page.body)
	}
	a := b.post("/ui/webhooks", url.Values{"csrf": {b.csrf}, "url": {recv.URL + "/h"}, "events": {"crashed", "oom_killed"}, "crashes": {"4"}, "window_minutes": {"15"}})
	secret := regexp.MustCompile(`value="(whsec_[0-9a-f]+)"`).FindStringSubmatch(a.body)
	id := regexp.MustCompile(`Webhook (wh_[0-9a-f]+) added`).FindStringSubmatch(a.body)
	if a.code() != 200 || secret == nil || id == nil {
		t.Fatalf("add: %d %.2000s", a.code(), a.body)
	}
	page := b.get("/ui/webhooks")
	if strings.Contains(page.body, secret[1]) || !strings.Contains(page.body, "crashed, oom_killed") || !strings.Contains(page.body, "4 in 15m0s") {
		t.Fatalf("the page after the add (the secret must not show again): %.3000s", page.body)
	}
	if a := b.post("/ui/webhooks/"+id[1]+"/ping", url.Values{"csrf": {b.csrf}}); a.code() != http.StatusSeeOther {
		t.Fatalf("ping: %d %.300s", a.code(), a.body)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(page.body, "st-ready\">delivered"); page = b.get("/ui/webhooks") {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery on the page: %.3000s", page.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Load() != 1 {
		t.Errorf("the receiver got %d requests", got.Load())
	}

	bob := e.signedIn(e.bob)
	if page := bob.get("/ui/webhooks"); strings.Contains(page.body, id[1]) {
		t.Error("bob sees alice's webhook")
	}
	bob.post("/ui/webhooks/"+id[1]+"/delete", url.Values{"csrf": {bob.csrf}})
	if page := b.get("/ui/webhooks"); !strings.Contains(page.body, `id="hook-`+id[1]) {
		t.Fatal("bob removed alice's webhook")
	}
	b.post("/ui/webhooks", url.Values{"csrf": {b.csrf}, "url": {"http://10.0.0.1/h"}})
	if page := b.get("/ui/webhooks"); !strings.Contains(page.body, "refused") {
		t.Errorf("a private address: the page does not say it was refused: %.2000s", page.body)
	}
	if a := b.post("/ui/webhooks", url.Values{"url": {recv.URL + "/csrf"}}); a.code() == 200 && strings.Contains(a.body, "added") {
		t.Error("an add without the CSRF token was accepted")
	}
	if a := b.post("/ui/webhooks/"+id[1]+"/delete", url.Values{"csrf": {b.csrf}}); a.code() != http.StatusSeeOther {
		t.Fatalf("delete: %d", a.code())
	}
	if page := b.get("/ui/webhooks"); strings.Contains(page.body, `id="hook-`+id[1]) || !strings.Contains(page.body, "No webhook yet") {
		t.Error("the webhook is still on the page after its removal")
	}
}
