package browsertest

import (
	"bytes"
	"fmt"
	"html"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// page is the kit's test page: a form, a file input, an element an
// EventSource updates, buttons that log errors, and a tall block for
// full-page screenshots.
const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>browsertest</title>
<link rel="icon" href="data:,">
<style>body{font:16px sans-serif}#tall{height:3000px;background:linear-gradient(#fff,#9cf)}</style>
</head><body>
<h1>Hello</h1>
<form id="form" method="post" action="/submit">
  <label>Name <input id="name" name="name"></label>
  <button id="send" type="submit">Send</button>
</form>
<form id="upload" method="post" action="/upload" enctype="multipart/form-data">
  <input id="files" name="files" type="file" multiple>
  <button id="upload-send" type="submit">Upload</button>
</form>
<ul id="picked"></ul>
<button id="count" type="button">clicked 0</button>
<p id="doomed">going soon</p>
<button id="remove" type="button">remove</button>
<p id="live">waiting</p>
<button id="err" type="button">log an error</button>
<button id="throw" type="button">throw</button>
<div id="tall"></div>
<script>
const $ = (id) => document.getElementById(id);
$('files').addEventListener('change', (e) => {
  $('picked').replaceChildren(...[...e.target.files].map((f) => {
    const li = document.createElement('li');
    li.textContent = f.name + ' (' + f.size + ' bytes)';
    return li;
  }));
});
let clicks = 0;
$('count').addEventListener('click', () => { clicks++; $('count').textContent = 'clicked ' + clicks; });
$('remove').addEventListener('click', () => $('doomed').remove());
$('err').addEventListener('click', () => console.error('boom', 42));
$('throw').addEventListener('click', () => { throw new Error('thrown on purpose'); });
const events = new EventSource('/events');
events.onopen = () => { $('live').textContent = 'connected'; };
events.onmessage = (e) => { $('live').textContent = e.data; };
</script>
</body></html>`

// site serves the test page on loopback; send pushes a message to every
// page connected to /events.
type site struct {
	*httptest.Server
	events chan string
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{events: make(chan string, 16)}
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>got</title><link rel="icon" href="data:,"><p id="got">name=%s</p>`, html.EscapeString(r.FormValue("name")))
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var b strings.Builder
		for _, fh := range r.MultipartForm.File["files"] {
			f, err := fh.Open()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			content, _ := io.ReadAll(f)
			f.Close()
			fmt.Fprintf(&b, "<li>%s: %s</li>", html.EscapeString(fh.Filename), html.EscapeString(string(content)))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>uploaded</title><link rel="icon" href="data:,"><ul id="received">%s</ul>`, b.String())
	})
	mux.HandleFunc("GET /cookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cret", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark", Path: "/"})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>cookie</title><link rel="icon" href="data:,"><p id="seen"></p><script>document.getElementById('seen').textContent = document.cookie</script>`)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>broken</title><link rel="icon" href="data:,"><img src="/missing.png" alt="missing">`)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case msg := <-s.events:
				fmt.Fprintf(w, "data: %s\n\n", msg)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			case <-done:
				return
			}
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(done)
		s.Close()
	})
	return s
}

func TestNavigateAndRead(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)
	if got := b.Text("h1"); got != "Hello" {
		t.Errorf("h1 reads %q", got)
	}
	if got := b.URL(); got != s.URL+"/" {
		t.Errorf("location %q, want %q", got, s.URL+"/")
	}
	if title := Eval[string](b, `document.title`); title != "browsertest" {
		t.Errorf("title %q", title)
	}
}

func TestAccessibility(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)
	nodes := b.Accessibility()
	for _, want := range []AXNode{{Role: "heading", Name: "Hello"}, {Role: "button", Name: "clicked 0"}, {Role: "textbox", Name: "Name"}} {
		if !slices.Contains(nodes, want) {
			t.Errorf("no %+v in the accessibility tree %+v", want, nodes)
		}
	}
}

func TestCookies(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL + "/cookie")
	b.WaitText("#seen", "theme=dark")
	if seen := b.Text("#seen"); strings.Contains(seen, "s3cret") {
		t.Errorf("the page's script sees the HttpOnly cookie: %q", seen)
	}
	byName := map[string]bool{}
	for _, c := range b.Cookies() {
		byName[c.Name] = true
		if c.Name == "session" && (!c.HTTPOnly || c.SameSite != "Strict" || c.Value != "s3cret") {
			t.Errorf("session cookie %+v, want HttpOnly and SameSite Strict", c)
		}
	}
	if !byName["session"] || !byName["theme"] {
		t.Errorf("cookies %v, want session and theme", byName)
	}
}

// CheckConsole fails the test at the step that caused an error, and takes
// the errors, so the test's end does not report them twice.
func TestCheckConsole(t *testing.T) {
	s := newSite(t)
	rec := &recorder{TB: t}
	b := New(rec, Options{})
	b.Navigate(s.URL)
	b.CheckConsole()
	if got := rec.reported(); got != "" {
		t.Fatalf("a clean page failed the check: %s", got)
	}
	b.Click("#throw")
	deadline := time.Now().Add(20 * time.Second)
	for len(b.ConsoleErrors()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	b.CheckConsole()
	if got := rec.reported(); !strings.Contains(got, "thrown on purpose") {
		t.Errorf("CheckConsole reported %q", got)
	}
	b.Close()
	if got := rec.reported(); strings.Count(got, "thrown on purpose") != 1 {
		t.Errorf("reported %q: the error twice", got)
	}
}

func TestFormTypeClick(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)
	b.Type("#name", "Ad")
	b.Type("#name", "a <b>")
	if got := b.Value("#name"); got != "Ada <b>" {
		t.Errorf("typed %q", got)
	}
	b.Fill("#name", "Grace")
	if got := b.Value("#name"); got != "Grace" {
		t.Errorf("filled %q", got)
	}
	b.Click("#count")
	b.Click("#count")
	b.WaitText("#count", "clicked 2")
	b.Click("#remove")
	b.WaitGone("#doomed")

	b.Click("#send") // posts the form: a new page
	b.WaitText("#got", "name=Grace")
}

func TestUpload(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)
	b.UploadFiles("#files", map[string]string{"a.txt": "hello", "sub/b.go": "package b"})
	b.WaitText("#picked", "a.txt (5 bytes)")
	b.WaitText("#picked", "b.go (9 bytes)")
	b.Click("#upload-send")
	b.WaitText("#received", "a.txt: hello")
	b.WaitText("#received", "b.go: package b")
}

func TestEventSource(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)
	b.WaitText("#live", "connected")
	s.events <- "tick 1"
	b.WaitText("#live", "tick 1")
	s.events <- "tick 2"
	b.WaitText("#live", "tick 2")
}

func TestScreenshot(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HERSHY_ARTIFACTS", dir)
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)

	path := b.Screenshot("whole page")
	if want := filepath.Join(dir, "TestScreenshot", "whole_page.png"); path != want {
		t.Errorf("saved to %s, want %s", path, want)
	}
	w, h := pngSize(t, path)
	if w < 1280 || h < 3000 {
		t.Errorf("screenshot is %d×%d: not the whole 3000-pixel-tall page at 1280 wide", w, h)
	}

	b.Viewport(390, 844)
	w, _ = pngSize(t, b.Screenshot("phone"))
	if w != 390 {
		t.Errorf("phone screenshot is %d wide, want 390", w)
	}
}

// pngSize decodes a PNG file's dimensions (and so checks it is one).
func pngSize(t *testing.T, path string) (int, int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	return cfg.Width, cfg.Height
}

func TestConsoleErrors(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)
	if errs := b.ConsoleErrors(); len(errs) != 0 {
		t.Fatalf("errors on a clean page: %q", errs)
	}

	b.Click("#err")
	if errs := b.WaitConsoleError("boom"); !slices.Contains(errs, "error: boom 42 ("+s.URL+"/)") {
		t.Errorf("console.error came as %q", errs)
	}
	b.Click("#throw")
	if errs := b.WaitConsoleError("thrown on purpose"); len(errs) != 1 || !strings.HasPrefix(errs[0], "exception: Uncaught Error: thrown on purpose") {
		t.Errorf("the exception came as %q", errs)
	}
	b.Navigate(s.URL + "/broken")
	if errs := b.WaitConsoleError("404"); !strings.Contains(strings.Join(errs, "\n"), "/missing.png") {
		t.Errorf("the failed image load came as %q", errs)
	}
	if errs := b.ConsoleErrors(); len(errs) != 0 {
		t.Errorf("errors left after taking them: %q", errs)
	}
}

// recorder stands for a test's testing.TB, and records what Errorf
// reports instead of failing the test. Everything else is the real test's.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) reported() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errors, "\n")
}

// An error the page logged and nobody took fails the test when the
// browser closes, unless the test allowed console errors.
func TestUntakenConsoleErrorsFailTheTest(t *testing.T) {
	s := newSite(t)
	for _, allow := range []bool{false, true} {
		rec := &recorder{TB: t}
		b := New(rec, Options{AllowConsoleErrors: allow})
		b.Navigate(s.URL)
		b.Click("#err")
		deadline := time.Now().Add(20 * time.Second)
		for len(b.ConsoleErrors()) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		b.Close()
		got := rec.reported()
		if failed := strings.Contains(got, "console error(s)") && strings.Contains(got, "boom 42"); failed == allow {
			t.Errorf("AllowConsoleErrors %v: the test failed: %v (reported %q)", allow, failed, got)
		}
	}
}

// Closing the browser leaves none of its processes running, and none of
// the goroutines that drove it.
func TestNoProcessesLeft(t *testing.T) {
	s := newSite(t)
	goroutines := runtime.NumGoroutine()
	b := New(t, Options{})
	b.Navigate(s.URL)
	pids := b.Processes()
	if len(pids) < 2 || !slices.Contains(pids, b.pid) {
		t.Fatalf("processes of the browser %d: %v, want it and its renderer at least", b.pid, pids)
	}
	b.Close()
	for _, pid := range pids {
		if st, ok := readStat(pid); ok && st.state != 'Z' {
			t.Errorf("process %d (state %c) outlived the browser", pid, st.state)
		}
	}
	if left := b.Processes(); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
	// Goroutines end asynchronously (the page's EventSource handler when
	// its connection drops): wait for the count to come back down.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the browser, %d after it closed:\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
	}
}

// A browser process that dies hard (killed, crashed) leaves its children
// orphaned; Close still ends them all.
func TestNoProcessesLeftAfterACrash(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	b.Navigate(s.URL)
	pids := b.Processes()
	if err := syscall.Kill(b.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, pid := range pids {
		if st, ok := readStat(pid); ok && st.state != 'Z' {
			t.Errorf("process %d (state %c) outlived the browser", pid, st.state)
		}
	}
}

// fatalRecorder records Fatalf and Skipf and ends the goroutine, as the
// testing package does; it must run on a goroutine of its own.
type fatalRecorder struct {
	testing.TB
	fatal, skip string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// Without Chromium a browser test fails in CI, and is skipped elsewhere.
func TestChromiumRequiredInCI(t *testing.T) {
	t.Setenv("HERSHY_CHROMIUM", filepath.Join(t.TempDir(), "no-chromium-here"))
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		rec := &fatalRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Chromium(rec)
		}()
		<-done
		if ci != "" && (rec.fatal == "" || !strings.Contains(rec.fatal, "required in CI")) {
			t.Errorf("CI=%s: fatal %q, skip %q; want a failure", ci, rec.fatal, rec.skip)
		}
		if ci == "" && (rec.skip == "" || rec.fatal != "") {
			t.Errorf("CI unset: fatal %q, skip %q; want a skip", rec.fatal, rec.skip)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	allowed := []string{
		"http://127.0.0.1:8080/ui/", "http://127.9.9.9/", "https://127.0.0.1/", "http://[::1]:1/x",
		"http://localhost:3000/", "HTTP://LOCALHOST/", "http://[::ffff:127.0.0.1]/", "about:blank",
	}
	refused := []string{
		"http://10.0.0.1/", "http://172.17.0.2:8080/", "http://192.168.1.1/", "https://example.com/",
		"http://127.0.0.1.nip.io/", "http://localhost.example.com/", "http://127.0.0.1@example.com/",
		"http://[::ffff:10.0.0.1]/", "http://0.0.0.0/", "file:///etc/passwd", "javascript:alert(1)",
		"ftp://127.0.0.1/", "data:text/html,<p>", "", "127.0.0.1:8080", "http://%zz/",
	}
	for _, u := range allowed {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("CheckLoopback(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range refused {
		if err := CheckLoopback(u); err == nil {
			t.Errorf("CheckLoopback(%q) = nil, want a refusal", u)
		}
	}
}

func TestSafeName(t *testing.T) {
	tests := map[string]string{
		"TestX/sub test": "TestX_sub_test", "../../etc/passwd": "etc_passwd", "": "unnamed",
		"a.png": "a.png", "..": "unnamed", "ünï": "n",
	}
	for in, want := range tests {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}
