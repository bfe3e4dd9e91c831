package ui

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/ui/chart"
	"github.com/hershyorg/hershy/internal/ui/highlight"
)

// Charts are drawn by the Host as SVG (package chart) from the resource
// history; the browser runs no charting code.

// points turns samples into a chart series.
func points(samples []statsSample, value func(statsSample) float64) []chart.Point {
	out := make([]chart.Point, len(samples))
	for i, s := range samples {
		out[i] = chart.Point{T: s.At, V: value(s)}
	}
	return out
}

// sparksFor draws the last 15 minutes of a program's CPU and memory for
// the programs page.
func (h *Handler) sparksFor(ctx context.Context, c *apiClient, p program) sparks {
	if p.State == "Created" || p.State == "Deleting" {
		return sparks{}
	}
	st, err := fetchStats(ctx, c, p.ProgramID, "15m", "fine")
	if err != nil || st == nil || len(st.Samples) == 0 {
		return sparks{}
	}
	now := h.opts.Now()
	step := time.Duration(st.StepSeconds * float64(time.Second))
	last := st.Samples[len(st.Samples)-1]
	return sparks{
		Has: true,
		CPU: chart.Sparkline{Title: "CPU of " + p.ProgramID, Unit: chart.Percent, Max: 100, Step: step,
			From: now.Add(-15 * time.Minute), To: now, Width: 90, Height: 22,
			Points: points(st.Samples, func(s statsSample) float64 { return s.CPUPercent })}.SVG(),
		Mem: chart.Sparkline{Title: "Memory of " + p.ProgramID, Unit: chart.Bytes, Max: float64(last.MemoryLimitBytes), Step: step,
			From: now.Add(-15 * time.Minute), To: now, Width: 90, Height: 22,
			Points: points(st.Samples, func(s statsSample) float64 { return float64(s.MemoryBytes) })}.SVG(),
		CPUNow: chart.Format(last.CPUPercent, chart.Percent),
		MemNow: chart.Format(float64(last.MemoryBytes), chart.Bytes),
	}
}

// lineChart is one chart of the resources page.
func lineChart(title string, unit chart.Unit, st *stats, from, to time.Time, value func(statsSample) float64, limit float64) template.HTML {
	return chart.Line{
		Title: title, Unit: unit, Points: points(st.Samples, value), Limit: limit,
		From: from, To: to, Step: time.Duration(st.StepSeconds * float64(time.Second)), Width: 640, Height: 220,
	}.SVG()
}

// highlighted is a source file as highlighted, escaped HTML.
func highlighted(name, text string) template.HTML {
	return highlight.File(name, []byte(text))
}

// kitCSS is the style the chart and highlight packages ship, served as
// /ui/static/kit.css before the dashboard's own (which adapts it to the
// theme toggle).
var kitCSS = []byte(chart.Stylesheet + highlight.Stylesheet)

func (h *Handler) serveKitCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprint(w, string(kitCSS))
}
