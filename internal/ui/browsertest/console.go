package browsertest

import (
	"encoding/json"
	"strings"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// listen collects the tab's errors: console.error and console.assert
// calls, uncaught exceptions (and unhandled rejections), and the entries
// of the browser's log at level error, which is where Chromium reports a
// resource that failed to load or a blocked request.
func (b *Browser) listen() {
	chromedp.ListenTarget(b.ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.APITypeError && ev.Type != runtime.APITypeAssert {
				return
			}
			parts := make([]string, 0, len(ev.Args))
			for _, arg := range ev.Args {
				parts = append(parts, remoteString(arg))
			}
			msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			if d == nil {
				return
			}
			msg = "uncaught: " + d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
		case *log.EventEntryAdded:
			if ev.Entry == nil || ev.Entry.Level != log.LevelError {
				return
			}
			msg = "log (" + string(ev.Entry.Source) + "): " + ev.Entry.Text
			if ev.Entry.URL != "" {
				msg += " (" + ev.Entry.URL + ")"
			}
		default:
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.closed {
			b.console = append(b.console, msg)
		}
	})
}

// remoteString is how console shows a logged value: a string as it is,
// another primitive as JSON, an object by its description.
func remoteString(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.Description != "" {
		return o.Description
	}
	if o.UnserializableValue != "" {
		return string(o.UnserializableValue)
	}
	return string(o.Type)
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
