package ui

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/hershyorg/hershy/internal/ui/chart"
)

// resourceChart is one chart of the resources page: a series over time.
type resourceChart struct {
	Title string
	Now   string // the latest value in words
	SVG   template.HTML
}

type resourceView struct {
	Window  string // "1h" or "24h"
	Has     bool
	Err     string
	Step    float64
	Charts  []resourceChart
	Samples int
}

// resourcesPage draws the program's CPU, memory, pids, /state use and
// restarts over the last hour (fine samples) or day (coarse ones).
func (h *Handler) resourcesPage(w http.ResponseWriter, r *http.Request, req *request) {
	p, ok := h.loadProgram(w, r, req)
	if !ok {
		return
	}
	window := r.URL.Query().Get("window")
	if window != "24h" {
		window = "1h"
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	v := h.resources(ctx, req.api, p.ProgramID, window)
	h.render(w, r, req, http.StatusOK, "resources", "Resources of "+p.ProgramID, map[string]any{"P": p, "Tab": "resources", "R": v})
}

func (h *Handler) resources(ctx context.Context, c *apiClient, id, window string) resourceView {
	v := resourceView{Window: window}
	res := "fine"
	if window == "24h" {
		res = "coarse"
	}
	st, err := fetchStats(ctx, c, id, window, res)
	if err != nil {
		v.Err = err.Error()
		return v
	}
	if st == nil || len(st.Samples) == 0 {
		return v
	}
	v.Has, v.Step, v.Samples = true, st.StepSeconds, len(st.Samples)
	last := st.Samples[len(st.Samples)-1]
	to := h.opts.Now()
	from := to.Add(-time.Hour)
	if window == "24h" {
		from = to.Add(-24 * time.Hour)
	}
	line := func(title string, unit chart.Unit, value func(statsSample) float64, limit float64) template.HTML {
		return lineChart(title+" of "+id, unit, st, from, to, value, limit)
	}
	v.Charts = []resourceChart{
		{Title: "CPU (% of one core)", Now: chart.Format(last.CPUPercent, chart.Percent),
			SVG: line("CPU", chart.Percent, func(s statsSample) float64 { return s.CPUPercent }, 0)},
		{Title: "Memory", Now: humanBytes(last.MemoryBytes) + " of " + humanBytes(last.MemoryLimitBytes),
			SVG: line("Memory", chart.Bytes, func(s statsSample) float64 { return float64(s.MemoryBytes) }, float64(last.MemoryLimitBytes))},
		{Title: "Processes and threads (pids)", Now: fmt.Sprint(last.Pids),
			SVG: line("Pids", chart.Number, func(s statsSample) float64 { return float64(s.Pids) }, 0)},
		{Title: "/state used", Now: humanBytes(last.StateBytesUsed) + " of " + humanBytes(last.StateBytesLimit),
			SVG: line("/state use", chart.Bytes, func(s statsSample) float64 { return float64(s.StateBytesUsed) }, float64(last.StateBytesLimit))},
		{Title: "Restarts", Now: fmt.Sprint(last.Restarts),
			SVG: line("Restarts", chart.Number, func(s statsSample) float64 { return float64(s.Restarts) }, 0)},
	}
	return v
}
