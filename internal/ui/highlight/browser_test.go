package highlight_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hershyorg/hershy/internal/ui/browsertest"
	"github.com/hershyorg/hershy/internal/ui/highlight"
)

// In a real browser: hostile source text is shown as text by the HTML
// parser (no element is injected, no script runs), every line is there
// with its number, and a #L anchor targets its line.
func TestSourceInBrowser(t *testing.T) {
	src := "package main\n\n// </code></pre><script>document.title='pwned'</script>\nvar s = \"<img src=x onerror=\\\"document.title='pwned'\\\">\"\r\nvar r = `\x00\x1b</textarea>`\n"
	page := `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>source</title><link rel="icon" href="data:,">` +
		`<style>` + highlight.Stylesheet + `</style></head><body>` + string(highlight.File("main.go", []byte(src))) + `</body></html>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)

	b := browsertest.New(t, browsertest.Options{})
	b.Navigate(srv.URL + "/#L3")
	if got := browsertest.Eval[int](b, `document.querySelectorAll("script, img, textarea").length`); got != 0 {
		t.Errorf("%d injected elements in the page", got)
	}
	if got := browsertest.Eval[string](b, `document.title`); got != "source" {
		t.Errorf("document.title is %q: source text ran as script", got)
	}
	if got := browsertest.Eval[int](b, `document.querySelectorAll(".hl-line").length`); got != 5 {
		t.Errorf("%d lines shown, want 5", got)
	}
	if got := browsertest.Eval[string](b, `document.querySelector(".hl-line:target").id`); got != "L3" {
		t.Errorf("the target line is %q, want L3", got)
	}
	shown := browsertest.Eval[string](b, `document.querySelector("pre.hl").textContent`)
	want := strings.NewReplacer("\r\n", "\n", "\x00", "\ufffd", "\x1b", "\u241b").Replace(src)
	if shown != want {
		t.Errorf("the page shows\n%q\nwant\n%q", shown, want)
	}
	b.Screenshot("source")
}
