package browsertest

import (
	"strings"

	"github.com/chromedp/chromedp"
)

// collectConsole collects the tab's errors in the background until the
// tab closes: console.error and console.assert calls, uncaught exceptions
// and unhandled rejections, and the entries of the browser's log at level
// error, which is where Chromium reports a resource that failed to load or
// a blocked request.
func (b *Browser) collectConsole() {
	messages := chromedp.Console(b.ctx) // subscribed from here on
	b.consoleDone = make(chan struct{})
	go func() {
		defer close(b.consoleDone)
		for m, err := range messages {
			if err != nil {
				return // the tab is closed
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleException, "assert":
			default:
				continue
			}
			msg := m.String()
			if m.URL != "" {
				msg += " (" + m.URL + ")"
			}
			b.mu.Lock()
			if !b.closed {
				b.console = append(b.console, msg)
			}
			b.mu.Unlock()
		}
	}()
}

// ConsoleErrors returns the errors the page has logged and nobody has
// taken yet, oldest first. Events arrive asynchronously: to wait for an
// error that an action causes, see [Browser.WaitConsoleError].
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// TakeConsoleErrors returns the errors not yet taken and forgets them, so
// that an error a test provoked on purpose (a refused request, say) does
// not fail it at its end.
func (b *Browser) TakeConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	errs := b.console
	b.console = nil
	return errs
}

// CheckConsole fails the test (without stopping it) if the page has logged
// errors not yet taken, and takes them. The test's end does the same
// unless Options.AllowConsoleErrors is set; calling it after each step
// points at the step that caused an error.
func (b *Browser) CheckConsole() {
	b.t.Helper()
	if errs := b.TakeConsoleErrors(); len(errs) > 0 {
		b.t.Errorf("browsertest: the page logged %d console error(s):\n\t%s", len(errs), strings.Join(errs, "\n\t"))
	}
}
