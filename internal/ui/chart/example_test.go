package chart_test

import (
	"fmt"
	"html/template"
	"regexp"
	"time"

	"github.com/hershyorg/hershy/internal/ui/chart"
)

// A program's memory over the last hour, against its limit. The chart is
// template.HTML, so a page template places it as it is; the title (here a
// program name) is escaped inside it.
func ExampleLine() {
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var points []chart.Point
	for i := range 60 {
		points = append(points, chart.Point{T: start.Add(time.Duration(i) * time.Minute), V: float64(100+i) * (1 << 20)})
	}
	c := chart.Line{
		Title:  "Memory of <bot-7>",
		Unit:   chart.Bytes,
		Points: points,
		Limit:  256 << 20,
		From:   start,
		To:     start.Add(time.Hour),
	}
	page := template.Must(template.New("").Parse(`<figure>{{.}}</figure>`))
	var out regexpWriter
	if err := page.Execute(&out, c.SVG()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(out.find(`<title>.*</title>`))
	fmt.Println(out.find(`<desc>.*</desc>`))
	fmt.Println(out.find(`<text class="chart-limit-label"[^>]*>[^<]*</text>`))
	// Output:
	// <title>Memory of &lt;bot-7&gt;</title>
	// <desc>60 samples from 10:00 to 11:00 UTC. Latest 159 MiB, lowest 100 MiB, highest 159 MiB. limit: 256 MiB.</desc>
	// <text class="chart-limit-label" x="590" y="31.9" text-anchor="end" fill="currentColor">limit 256 MiB</text>
}

// A CPU sparkline for a row of the programs list, on a 0-100% scale so that
// rows compare at a glance. The program was stopped for a while: the line
// breaks there.
func ExampleSparkline() {
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var points []chart.Point
	for i := range 10 {
		points = append(points, chart.Point{T: start.Add(time.Duration(i) * 10 * time.Second), V: float64(i * 5)})
	}
	points = append(points, chart.Point{T: start.Add(5 * time.Minute), V: 80})
	points = append(points, chart.Point{T: start.Add(5*time.Minute + 10*time.Second), V: 70})
	s := chart.Sparkline{Title: "CPU", Unit: chart.Percent, Points: points, Max: 100, Width: 60, Height: 16}
	fmt.Println(s.SVG())
	// Output:
	// <svg xmlns="http://www.w3.org/2000/svg" class="chart chart-spark" role="img" width="60" height="16" viewBox="0 0 60 16"><title>CPU</title><desc>Latest 70%, highest 80%, 1 gap in the samples</desc><path class="chart-series" fill="none" stroke="currentColor" stroke-width="1" stroke-linejoin="round" stroke-linecap="round" d="M1.5 14.5L3.3 13.9L5.2 13.2L7 12.6L8.9 11.9L10.7 11.3L12.5 10.6L14.4 10L16.2 9.3L18 8.6M56.7 4.1L58.5 5.4"/><circle class="chart-last" cx="58.5" cy="5.4" r="1.5" fill="currentColor"/></svg>
}

func ExampleFormat() {
	fmt.Println(chart.Format(1.5*(1<<30), chart.Bytes))
	fmt.Println(chart.Format(42, chart.Percent))
	fmt.Println(chart.Format(1234, chart.Number))
	// Output:
	// 1.5 GiB
	// 42%
	// 1.23k
}

// regexpWriter keeps what a template wrote, to show parts of it.
type regexpWriter struct{ b []byte }

func (w *regexpWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *regexpWriter) find(expr string) string     { return string(regexp.MustCompile(expr).Find(w.b)) }
