// Package browsertest drives a real headless Chromium from Go tests, the
// way net/http/httptest serves a handler: one call gives a test its own
// browser, helpers fail the test with a clear message (and a screenshot)
// instead of returning errors, and the test's end cleans everything up.
//
//	b := browsertest.New(t, browsertest.Options{})
//	b.Navigate(srv.URL + "/ui/")
//	b.Fill("#token", token)
//	b.Click("button[type=submit]")
//	b.WaitText("h1", "Programs")
//	b.Screenshot("programs")
//
// Beyond those: Type, Text, Value, WaitVisible, WaitGone, Upload and
// UploadFiles (an <input type=file>), Viewport (a phone-sized page),
// Cookies (with their HttpOnly and SameSite flags), Accessibility (what a
// screen reader is told), and Eval and Run for any JavaScript expression
// or chromedp action.
//
// The browser is Debian's chromium (scripts/setup-browser.sh installs it),
// started by chromedp with a fresh profile, in a process group of its own.
// When no Chromium is found the test is skipped, except in CI (the CI
// variable set), where it fails: browser tests never skip silently there.
//
// Each Browser collects the page's console errors, uncaught exceptions and
// the browser's own error log (a failed resource load, a CSP violation).
// Unless [Options.AllowConsoleErrors] is set, any error nobody took with
// [Browser.TakeConsoleErrors] fails the test at its end: a page that throws
// is a broken page even when the assertions pass. Note that this includes
// any resource answered 404, the favicon.ico Chromium asks for by itself
// among them: a page under test serves one, or says it has none with
// <link rel="icon" href="data:,">.
//
// Navigation is only to loopback addresses (127.0.0.0/8, ::1, localhost),
// and the browser resolves no other host name, so a test cannot reach out
// of the machine through a page.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Options configure a Browser. The zero value is a 1280×800 window, 20 s
// per action, and console errors failing the test.
type Options struct {
	// Timeout bounds each action (a navigation, a wait, a click). Zero
	// means 20 s: generous, because CI machines are small and shared.
	Timeout time.Duration
	// Width and Height are the window's size in pixels; zero means
	// 1280×800. See also [Browser.Viewport].
	Width, Height int
	// AllowConsoleErrors keeps console errors from failing the test at its
	// end. They are still collected and logged.
	AllowConsoleErrors bool
}

// Browser is one headless Chromium with one tab, owned by one test.
// Its methods must be called from the test's goroutine (they may call
// t.Fatal).
type Browser struct {
	t       testing.TB
	opts    Options
	ctx     context.Context // the tab
	cancel  context.CancelFunc
	dataDir string
	pid     int // the browser process; its process group has the same id

	allocCancel context.CancelFunc

	consoleDone chan struct{} // closed when the console collector ends

	mu        sync.Mutex
	console   []string // errors not yet taken
	closed    bool
	artifacts string // created on the first screenshot

	closeOnce sync.Once
	shots     int
}

// New starts a headless Chromium for the test and returns its tab. The
// browser is closed, and its processes are checked to be gone, when the
// test ends (or at Close).
func New(t testing.TB, opts Options) *Browser {
	t.Helper()
	bin := Chromium(t)
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.Width <= 0 || opts.Height <= 0 {
		opts.Width, opts.Height = 1280, 800
	}
	b := &Browser{t: t, opts: opts, dataDir: t.TempDir()}

	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(b.dataDir),
		chromedp.WindowSize(opts.Width, opts.Height),
		// Chromium's sandbox needs user namespaces or a setuid helper,
		// and refuses to start as root without them: tests here run as
		// root in a container (CI too), which has neither. The pages it
		// opens are the test's own, served on loopback.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// No traffic of the browser's own: no updates, no QUIC probes, and
		// every host name but the loopback ones resolves to nothing
		// (without the exclusions the rule also catches IP literals).
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-pings", true),
		// Chromium still starts its crashpad handlers, detached: a session
		// of their own, parented to init. With a home (and so their
		// database) in the profile directory, their command line names it,
		// so Close finds them (see processes); and the browser writes
		// nothing to the machine's $HOME.
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.Env(
			"HOME="+b.dataDir,
			"XDG_CONFIG_HOME="+filepath.Join(b.dataDir, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(b.dataDir, ".cache"),
		),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.*.*.* , EXCLUDE [::1]"),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// A process group of its own, so that Close can end every
			// process Chromium started (renderers, zygotes, GPU) even if
			// the browser itself is gone; and the browser dies with the
			// test binary, as chromedp arranges by default.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	b.allocCancel = allocCancel
	b.ctx, b.cancel = chromedp.NewContext(allocCtx,
		chromedp.WithErrorf(b.logf), // chromedp's own complaints, e.g. an event it cannot decode
	)
	t.Cleanup(b.Close)

	// The first Do starts the browser and opens the tab. It gets no
	// deadline of its own: in chromedp the context of the first call owns
	// the browser, and a timeout on it would end the browser with it.
	if err := chromedp.Do(b.ctx); err != nil {
		t.Fatalf("browsertest: starting %s: %v", bin, err)
	}
	if p := chromedp.FromContext(b.ctx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	b.collectConsole()
	return b
}

// Run runs a chromedp action that returns a value in b's tab, within the
// action timeout, and fails the test if it fails. For example:
//
//	html := browsertest.Run(b, chromedp.OuterHTML(chromedp.CSS("main")))
func Run[T any](b *Browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := run(b, a)
	if err != nil {
		b.fatalf("%v", err)
	}
	return v
}

// run runs an action with the action timeout.
func run[T any](b *Browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if errors.Is(err, context.DeadlineExceeded) {
		return v, fmt.Errorf("timed out after %v", b.opts.Timeout)
	}
	return v, err
}

// do runs actions that return nothing with the action timeout.
func (b *Browser) do(steps ...chromedp.Action[chromedp.Void]) error {
	_, err := run(b, chromedp.Steps(steps...))
	return err
}

// fatalf fails the test after saving a screenshot of the page as it was,
// which is most of what one needs to see why a browser test failed in CI.
func (b *Browser) fatalf(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	b.mu.Lock()
	b.shots++
	n := b.shots
	b.mu.Unlock()
	if path, err := b.screenshot(fmt.Sprintf("failure-%d", n)); err == nil {
		msg += "\n\tscreenshot of the page: " + path
	}
	b.t.Fatalf("browsertest: %s", msg)
}

// logf logs through the test while it runs; chromedp may call it from its
// own goroutines, also after the test has ended, when logging would panic.
func (b *Browser) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.t.Logf("browsertest: chromedp: "+format, args...)
	}
}

// Close closes the browser and waits until every process it started is
// gone, failing the test if one is left. The test's end calls it; calling
// it again does nothing.
func (b *Browser) Close() {
	b.closeOnce.Do(func() {
		b.t.Helper()
		procs := b.processes()

		// A graceful close first, so Chromium can flush and end its
		// children itself; then the allocator's cancel, which kills what
		// is left of the browser process and waits for it.
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			defer cancel()
			_ = chromedp.Cancel(ctx)
		}()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			b.t.Logf("browsertest: the browser did not close in 15 s; killing it")
		}
		b.cancel()
		b.allocCancel()
		<-done
		if b.consoleDone != nil {
			<-b.consoleDone // the collector ends with the tab's context
		}

		b.mu.Lock()
		b.closed = true
		left := b.console
		b.console = nil
		b.mu.Unlock()

		// Whatever Chromium started and did not end (a renderer, a zygote)
		// is ended now: the process group, and each process seen before
		// the close in case one left the group.
		if b.pid > 0 {
			_ = syscall.Kill(-b.pid, syscall.SIGKILL)
		}
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if alive := b.waitGone(procs, 10*time.Second); len(alive) > 0 {
			b.t.Errorf("browsertest: Chromium processes outlived the browser: %v", alive)
		}

		if len(left) > 0 {
			report := b.t.Errorf
			if b.opts.AllowConsoleErrors {
				report = b.t.Logf
			}
			report("browsertest: the page logged %d console error(s):\n\t%s", len(left), strings.Join(left, "\n\t"))
		}
	})
}

// artifactsDir is where screenshots go: $HERSHY_ARTIFACTS/<test name> when
// that variable is set (to keep them), else a folder in the test's
// temporary directory, removed with it. It must be called from the test's
// goroutine.
func (b *Browser) artifactsDir() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.artifacts != "" {
		return b.artifacts, nil
	}
	var dir string
	if root := os.Getenv("HERSHY_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, safeName(b.t.Name()))
	} else {
		dir = b.t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b.artifacts, _ = filepath.Abs(dir)
	return b.artifacts, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// safeName makes a test or screenshot name usable as one file name.
func safeName(s string) string {
	s = strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "._")
	if s == "" {
		s = "unnamed"
	}
	return s
}
