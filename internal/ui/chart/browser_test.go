package chart_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/ui/browsertest"
	"github.com/hershyorg/hershy/internal/ui/chart"
)

// In a real browser, with a hostile program name in the titles: the HTML
// parser (not only an XML one) finds no injected element, the charts read
// as images named by their titles for a screen reader, and the page logs
// no error.
func TestChartsInBrowser(t *testing.T) {
	const name = `bot</title><script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">`
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var ps []chart.Point
	for i := range 120 {
		ps = append(ps, chart.Point{T: start.Add(time.Duration(i) * 30 * time.Second), V: float64(i) * (1 << 20)})
	}
	line := chart.Line{Title: "Memory of " + name, Unit: chart.Bytes, Points: ps, Limit: 256 << 20, LimitLabel: name}
	spark := chart.Sparkline{Title: "CPU of " + name, Points: ps}
	page := `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>charts</title><link rel="icon" href="data:,">` +
		`<style>` + chart.Stylesheet + `</style></head><body>` + string(line.SVG()) + string(spark.SVG()) + `</body></html>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)

	b := browsertest.New(t, browsertest.Options{})
	b.Navigate(srv.URL)
	if got := browsertest.Eval[int](b, `document.querySelectorAll("script, img, foreignObject, iframe").length`); got != 0 {
		t.Errorf("%d injected elements in the page", got)
	}
	if got := browsertest.Eval[string](b, `document.title`); got != "charts" {
		t.Errorf("document.title is %q: a title's text ran as script", got)
	}
	if got := browsertest.Eval[string](b, `document.querySelector("svg title").textContent`); got != "Memory of "+name {
		t.Errorf("the title reads %q", got)
	}
	nodes := b.Accessibility()
	var images []string
	for _, n := range nodes {
		if n.Role == "image" {
			images = append(images, n.Name)
			if n.Description == "" {
				t.Errorf("image %q has no description", n.Name)
			}
		}
	}
	if !slices.Equal(images, []string{"Memory of " + name, "CPU of " + name}) {
		t.Errorf("images in the accessibility tree: %q", images)
	}
	b.Screenshot("charts")
}
