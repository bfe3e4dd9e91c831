package ui

import (
	"context"
	"fmt"
	"html/template"
)

// Charts are drawn by package chart (the Host draws SVG; the browser runs
// no charting code). Until it is merged these return nothing and the pages
// show the latest values in words.

func lineChart(unit string, samples []statsSample, value func(statsSample) float64, limit float64) template.HTML {
	return ""
}

// sparksFor reads the last 15 minutes of a program's history for the
// programs page.
func (h *Handler) sparksFor(ctx context.Context, c *apiClient, p program) sparks {
	if p.State == "Created" || p.State == "Deleting" {
		return sparks{}
	}
	st, err := fetchStats(ctx, c, p.ProgramID, "15m", "fine")
	if err != nil || st == nil || len(st.Samples) == 0 {
		return sparks{}
	}
	last := st.Samples[len(st.Samples)-1]
	return sparks{
		Has:    true,
		CPUNow: fmt.Sprintf("%.1f%%", last.CPUPercent),
		MemNow: humanBytes(last.MemoryBytes),
	}
}
