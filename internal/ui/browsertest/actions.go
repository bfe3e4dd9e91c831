package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// Selectors are CSS selectors, as document.querySelector takes them; an
// action waits (within the action timeout) until its element is there.

// Navigate loads url in the tab and waits for its load event. Only
// loopback URLs are allowed (see CheckLoopback): anything else fails the
// test before the browser is asked.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	if err := CheckLoopback(url); err != nil {
		b.t.Fatalf("browsertest: %v", err)
	}
	if err := b.do(chromedp.Navigate(url)); err != nil {
		b.fatalf("navigating to %s: %v", url, err)
	}
}

// URL returns the tab's current location.
func (b *Browser) URL() string {
	b.t.Helper()
	u, err := run(b, chromedp.Location())
	if err != nil {
		b.fatalf("reading the location: %v", err)
	}
	return u
}

// WaitVisible waits until an element matching sel is in the page and
// visible.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	if err := b.do(chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		b.fatalf("waiting for %s to be visible: %v", sel, err)
	}
}

// WaitGone waits until no element matches sel.
func (b *Browser) WaitGone(sel string) {
	b.t.Helper()
	if err := b.do(chromedp.WaitNotPresent(chromedp.CSS(sel))); err != nil {
		b.fatalf("waiting for %s to go: %v", sel, err)
	}
}

// pollEvery is how often WaitText and WaitConsoleError look again.
const pollEvery = 100 * time.Millisecond

// WaitText waits until the text of the first element matching sel contains
// text. Unlike chromedp's own polling, the wait survives a navigation
// (a form posted, a redirect), so it can follow a click that loads a page.
func (b *Browser) WaitText(sel, text string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.textContent : null })()`, jsString(sel))
	var last *string
	var evalErr error
	err := b.poll(func(ctx context.Context) (bool, error) {
		var got *string
		if got, evalErr = chromedp.Run(ctx, chromedp.Evaluate[*string](js)); evalErr != nil {
			return false, nil // a page between two documents: look again
		}
		last = got
		return got != nil && strings.Contains(*got, text), nil
	})
	if err != nil {
		was := "no element matched"
		switch {
		case evalErr != nil:
			was = "the page answered: " + evalErr.Error()
		case last != nil:
			was = fmt.Sprintf("its text was %q", clip(*last, 300))
		}
		b.fatalf("waiting for %s to contain %q: %v; %s", sel, text, err, was)
	}
}

// poll calls check every pollEvery until it reports done, it fails, or the
// action timeout passes. check gets a context with that deadline.
func (b *Browser) poll(check func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	for {
		done, err := check(ctx)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("timed out after %v", b.opts.Timeout)
		case err != nil:
			return err
		case done:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %v", b.opts.Timeout)
		case <-time.After(pollEvery):
		}
	}
}

// WaitConsoleError waits until an error whose text contains substr has
// been logged, takes every error logged so far, and returns them.
func (b *Browser) WaitConsoleError(substr string) []string {
	b.t.Helper()
	var found bool
	err := b.poll(func(context.Context) (bool, error) {
		for _, e := range b.ConsoleErrors() {
			if strings.Contains(e, substr) {
				found = true
			}
		}
		return found, nil
	})
	if err != nil {
		b.fatalf("waiting for a console error with %q: %v; errors so far: %q", substr, err, b.ConsoleErrors())
	}
	return b.TakeConsoleErrors()
}

// Text returns the visible text (innerText) of the first element matching
// sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	s, err := run(b, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("reading the text of %s: %v", sel, err)
	}
	return s
}

// Value returns the value of the form field matching sel.
func (b *Browser) Value(sel string) string {
	b.t.Helper()
	s, err := run(b, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("reading the value of %s: %v", sel, err)
	}
	return s
}

// Click clicks the middle of the element matching sel, as a mouse would,
// once it is visible.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	if err := b.do(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		b.fatalf("clicking %s: %v", sel, err)
	}
}

// Type types text into the element matching sel with key events, after
// what it holds.
func (b *Browser) Type(sel, text string) {
	b.t.Helper()
	if err := b.do(chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
		b.fatalf("typing into %s: %v", sel, err)
	}
}

// Fill empties the form field matching sel (as a user selecting its text
// and deleting it would: an input event fires), then types text into it.
func (b *Browser) Fill(sel, text string) {
	b.t.Helper()
	// chromedp's Clear empties the value attribute, which a field the user
	// has typed into no longer shows; the value property is what counts.
	empty := fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		e.focus();
		e.value = '';
		e.dispatchEvent(new Event('input', {bubbles: true}));
		return true;
	})()`, jsString(sel))
	if err := b.do(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Evaluate[bool](empty)(ctx, t)
			return chromedp.Void{}, err
		},
		chromedp.SendKeys(chromedp.CSS(sel), text),
	); err != nil {
		b.fatalf("filling %s: %v", sel, err)
	}
}

// Upload sets the files of the <input type=file> matching sel to the given
// paths (made absolute), as a user picking them would, and so fires its
// change event.
func (b *Browser) Upload(sel string, paths ...string) {
	b.t.Helper()
	abs := make([]string, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err == nil {
			_, err = os.Stat(a)
		}
		if err != nil {
			b.t.Fatalf("browsertest: upload: %v", err)
		}
		abs[i] = a
	}
	if err := b.do(chromedp.SetUploadFiles(chromedp.CSS(sel), abs)); err != nil {
		b.fatalf("setting the files of %s: %v", sel, err)
	}
}

// UploadFolder picks folder dir on the <input type=file webkitdirectory>
// matching sel, as a user choosing a folder does: the browser sends each
// of its files under the folder's name ("dir/main.go"). Headless Chromium
// leaves out the files of dir's subfolders (crbug 345393164), so the kit's
// folders are flat.
func (b *Browser) UploadFolder(sel, dir string) {
	b.t.Helper()
	b.Upload(sel, dir)
}

// UploadFiles writes files (name to content; names may hold slashes) into
// a new temporary folder and sets them on the <input type=file> matching
// sel, in the order of their names. The browser sends each file under its
// base name.
func (b *Browser) UploadFiles(sel string, files map[string]string) {
	b.t.Helper()
	dir := b.t.TempDir()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	paths := make([]string, 0, len(files))
	for _, name := range names {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			b.t.Fatal(err)
		}
		paths = append(paths, p)
	}
	b.Upload(sel, paths...)
}

// Eval evaluates a JavaScript expression in b's page and returns its
// value, decoded from JSON into T (a string, a number, a struct, ...).
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := run(b, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fatalf("evaluating %.80q: %v", expr, err)
	}
	return v
}

// Viewport resizes the page's viewport, to see a page as a phone shows it
// (say 390×844) before a Screenshot.
func (b *Browser) Viewport(width, height int) {
	b.t.Helper()
	if err := b.do(chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		b.fatalf("setting the viewport to %d×%d: %v", width, height, err)
	}
}

// Screenshot saves a PNG of the whole page (not only the viewport) as
// name.png in the artifacts directory (see the package documentation),
// logs where, and returns the path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	path, err := b.screenshot(name)
	if err != nil {
		b.fatalf("screenshot %s: %v", name, err)
	}
	b.t.Logf("browsertest: screenshot %s", path)
	return path
}

func (b *Browser) screenshot(name string) (string, error) {
	dir, err := b.artifactsDir()
	if err != nil {
		return "", err
	}
	png, err := run(b, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, safeName(name)+".png")
	return path, os.WriteFile(path, png, 0o644)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// clip shortens s to n bytes for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
