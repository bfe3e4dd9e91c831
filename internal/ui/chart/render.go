package chart

import (
	"html"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Stylesheet is a default style for the charts' classes. The charts draw
// with currentColor, so they show without it; a page that wants other
// colours (a dark theme, say) sets `color` on the same classes.
//
//	.chart         the <svg> (both kinds; .chart-line or .chart-spark too)
//	.chart-grid    horizontal grid lines
//	.chart-axis    the axis labels (fill)
//	.chart-series  the line of the values (stroke); .chart-area below it
//	.chart-dot     a lone sample between two gaps; .chart-last the latest
//	.chart-limit   the limit line and its label
//	.chart-empty   the "No data" text
const Stylesheet = `.chart{overflow:visible;max-width:100%;height:auto}
.chart-line{font:11px system-ui,sans-serif}
.chart-grid{color:inherit;opacity:.15}
.chart-axis{opacity:.75}
.chart-series,.chart-area,.chart-dot,.chart-last{color:#2563eb}
.chart-limit{color:#dc2626}
.chart-empty{opacity:.6}
@media (prefers-color-scheme:dark){.chart-series,.chart-area,.chart-dot,.chart-last{color:#60a5fa}.chart-limit{color:#f87171}}
`

// maxTextRunes bounds a title or description, so that a hostile name cannot
// make every chart on a page megabytes long.
const maxTextRunes = 300

// escapeText makes s safe as the text of an HTML or XML element: invalid
// UTF-8 and characters XML does not allow (controls, U+FFFE) become U+FFFD,
// line breaks and tabs become spaces, it is cut at maxTextRunes, and then
// <, >, &, ' and " are escaped.
func escapeText(s string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			r = ' '
		case r == utf8.RuneError || r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0xfffe || r == 0xffff:
			r = utf8.RuneError
		}
		if n == maxTextRunes {
			b.WriteRune('…')
			break
		}
		b.WriteRune(r)
		n++
	}
	return html.EscapeString(b.String())
}

// num writes a coordinate with one decimal, without a trailing ".0".
func num(v float64) string {
	if !finite(v) {
		v = 0
	}
	v = math.Round(v*10) / 10
	if v == 0 {
		v = 0
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// svgWriter collects markup. Everything written through it is either fixed
// markup, a number formatted by num, or text passed through escapeText.
type svgWriter struct{ strings.Builder }

func (w *svgWriter) open(class string, width, height int, title, desc string) {
	w.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" class="chart `)
	w.WriteString(class)
	w.WriteString(`" role="img" width="`)
	w.WriteString(strconv.Itoa(width))
	w.WriteString(`" height="`)
	w.WriteString(strconv.Itoa(height))
	w.WriteString(`" viewBox="0 0 `)
	w.WriteString(strconv.Itoa(width))
	w.WriteString(" ")
	w.WriteString(strconv.Itoa(height))
	w.WriteString(`"><title>`)
	w.WriteString(escapeText(title))
	w.WriteString(`</title><desc>`)
	w.WriteString(escapeText(desc))
	w.WriteString(`</desc>`)
}

func (w *svgWriter) close() { w.WriteString(`</svg>`) }

// text writes a <text> element whose content is escaped.
func (w *svgWriter) text(class string, x, y float64, anchor, s string) {
	w.WriteString(`<text class="`)
	w.WriteString(class)
	w.WriteString(`" x="`)
	w.WriteString(num(x))
	w.WriteString(`" y="`)
	w.WriteString(num(y))
	w.WriteString(`" text-anchor="`)
	w.WriteString(anchor)
	w.WriteString(`" fill="currentColor">`)
	w.WriteString(escapeText(s))
	w.WriteString(`</text>`)
}

// hline writes a horizontal line from x0 to x1 at y.
func (w *svgWriter) hline(class string, x0, x1, y float64, extra string) {
	w.WriteString(`<line class="`)
	w.WriteString(class)
	w.WriteString(`" x1="`)
	w.WriteString(num(x0))
	w.WriteString(`" y1="`)
	w.WriteString(num(y))
	w.WriteString(`" x2="`)
	w.WriteString(num(x1))
	w.WriteString(`" y2="`)
	w.WriteString(num(y))
	w.WriteString(`" stroke="currentColor"`)
	w.WriteString(extra)
	w.WriteString(`/>`)
}

// series writes the segments as one path (one M per segment), lone samples
// as dots, and, when area is set, the area under each segment down to
// baseline.
func (w *svgWriter) series(segs [][]xy, strokeWidth string, area bool, baseline float64) {
	if area {
		var d strings.Builder
		for _, s := range segs {
			if len(s) < 2 {
				continue
			}
			d.WriteString("M" + num(s[0].x) + " " + num(baseline))
			for _, p := range s {
				d.WriteString("L" + num(p.x) + " " + num(p.y))
			}
			d.WriteString("L" + num(s[len(s)-1].x) + " " + num(baseline) + "Z")
		}
		if d.Len() > 0 {
			w.WriteString(`<path class="chart-area" fill="currentColor" fill-opacity="0.12" stroke="none" d="`)
			w.WriteString(d.String())
			w.WriteString(`"/>`)
		}
	}
	var d strings.Builder
	for _, s := range segs {
		if len(s) < 2 {
			continue
		}
		for i, p := range s {
			if i == 0 {
				d.WriteString("M")
			} else {
				d.WriteString("L")
			}
			d.WriteString(num(p.x) + " " + num(p.y))
		}
	}
	if d.Len() > 0 {
		w.WriteString(`<path class="chart-series" fill="none" stroke="currentColor" stroke-width="`)
		w.WriteString(strokeWidth)
		w.WriteString(`" stroke-linejoin="round" stroke-linecap="round" d="`)
		w.WriteString(d.String())
		w.WriteString(`"/>`)
	}
	for _, s := range segs {
		if len(s) == 1 {
			w.dot("chart-dot", s[0], strokeWidth)
		}
	}
}

// dot writes a small filled circle.
func (w *svgWriter) dot(class string, p xy, r string) {
	w.WriteString(`<circle class="`)
	w.WriteString(class)
	w.WriteString(`" cx="`)
	w.WriteString(num(p.x))
	w.WriteString(`" cy="`)
	w.WriteString(num(p.y))
	w.WriteString(`" r="`)
	w.WriteString(r)
	w.WriteString(`" fill="currentColor"/>`)
}

// Layout of a Line chart, in pixels.
const (
	padTop     = 10 // room for the limit label above a limit at the top
	padRight   = 8
	padBottom  = 20 // the time labels
	charWidth  = 6.5
	tickLength = 4
)

func (c Line) render() string {
	w, h := clampSize(c.Width, lineWidth, lineMinW), clampSize(c.Height, lineHeight, lineMinH)
	loc := c.Location
	if loc == nil {
		loc = time.UTC
	}
	s := newSeries(c.Points, c.From, c.To, c.Step)
	limit := 0.0
	if c.Limit > 0 && finite(c.Limit) {
		limit = clampValue(c.Limit)
	}
	limitLabel := c.LimitLabel
	if limitLabel == "" {
		limitLabel = "limit"
	}

	// The y range always holds zero (usage is read from zero up) and the
	// limit.
	lo, hi := 0.0, limit
	if s.n > 0 {
		lo, hi = math.Min(lo, s.lo), math.Max(hi, s.hi)
	}
	plotH := float64(h - padTop - padBottom)
	yt := yTicks(lo, hi, c.Unit, min(6, max(2, int(plotH/40))))

	// The left margin fits the widest y label.
	longest := 0
	for _, l := range yt.labels {
		longest = max(longest, utf8.RuneCountInString(l))
	}
	left := math.Min(float64(w)/3, 8+charWidth*float64(longest))
	p := plot{
		x0: left, x1: float64(w - padRight), y0: padTop, y1: float64(h - padBottom),
		from: s.from, to: s.to, lo: yt.lo, hi: yt.hi,
	}

	desc := c.Desc
	if desc == "" && c.From.IsZero() && c.To.IsZero() && len(c.Points) == 0 {
		desc = "No samples."
	} else if desc == "" {
		desc = describe(s, c.Unit, limit, limitLabel, loc)
	}
	var out svgWriter
	out.open("chart-line", w, h, c.Title, desc)

	out.WriteString(`<g class="chart-grid">`)
	for _, v := range yt.values {
		out.hline("chart-grid-line", p.x0, p.x1, p.y(v), "")
	}
	out.WriteString(`</g><g class="chart-axis" font-size="11">`)
	for i, v := range yt.values {
		out.text("chart-y-label", p.x0-tickLength, p.y(v)+4, "end", yt.labels[i])
	}
	maxLabels := max(2, int((p.x1-p.x0)/70))
	if c.From.IsZero() && c.To.IsZero() && len(c.Points) == 0 {
		maxLabels = 0 // no window and no samples: no time to label
	}
	for _, t := range xTicks(s.from, s.to, loc, maxLabels) {
		x := p.x(t.t)
		out.WriteString(`<line class="chart-x-tick" x1="` + num(x) + `" y1="` + num(p.y1) + `" x2="` + num(x) + `" y2="` + num(p.y1+tickLength) + `" stroke="currentColor"/>`)
		anchor := "middle"
		if x-p.x0 < 20 {
			anchor = "start"
		} else if p.x1-x < 20 {
			anchor = "end"
		}
		out.text("chart-x-label", x, float64(h)-5, anchor, t.label)
	}
	out.WriteString(`</g>`)

	if s.n == 0 {
		out.text("chart-empty", (p.x0+p.x1)/2, (p.y0+p.y1)/2+4, "middle", "No data")
	} else {
		segs := make([][]xy, 0, len(s.segments))
		for _, seg := range s.segments {
			segs = append(segs, p.project(seg))
		}
		out.series(segs, "1.5", true, p.y(math.Max(0, yt.lo)))
	}

	if limit > 0 {
		y := p.y(limit)
		out.WriteString(`<g class="chart-limit">`)
		out.hline("chart-limit-line", p.x0, p.x1, y, ` stroke-dasharray="5 3"`)
		out.text("chart-limit-label", p.x1-2, y-3, "end", limitLabel+" "+Format(limit, c.Unit))
		out.WriteString(`</g>`)
	}
	out.close()
	return out.String()
}

func (sp Sparkline) render() string {
	w, h := clampSize(sp.Width, sparkWidth, sparkMinW), clampSize(sp.Height, sparkHeight, sparkMinH)
	s := newSeries(sp.Points, sp.From, sp.To, sp.Step)

	lo, hi := 0.0, 0.0
	if sp.Max > 0 && finite(sp.Max) {
		hi = clampValue(sp.Max)
	}
	if s.n > 0 {
		lo, hi = math.Min(lo, s.lo), math.Max(hi, s.hi)
	}
	if !(hi > lo) {
		hi = lo + 1
	}
	// One pixel of margin keeps the stroke and the dot inside the box.
	p := plot{x0: 1.5, x1: float64(w) - 1.5, y0: 1.5, y1: float64(h) - 1.5, from: s.from, to: s.to, lo: lo, hi: hi}

	desc := "No data"
	if s.n > 0 {
		desc = "Latest " + Format(s.last.V, sp.Unit) + ", highest " + Format(s.hi, sp.Unit)
		if s.gaps > 0 {
			desc += ", " + plural(s.gaps, "gap") + " in the samples"
		}
	}
	var out svgWriter
	out.open("chart-spark", w, h, sp.Title, desc)
	if s.n > 0 {
		segs := make([][]xy, 0, len(s.segments))
		for _, seg := range s.segments {
			segs = append(segs, p.project(seg))
		}
		out.series(segs, "1", false, 0)
		out.dot("chart-last", xy{p.x(s.last.T), p.y(s.last.V)}, "1.5")
	}
	out.close()
	return out.String()
}

// describe is the generated <desc> of a Line chart.
func describe(s series, u Unit, limit float64, limitLabel string, loc *time.Location) string {
	layout := "15:04"
	y0, m0, d0 := s.from.In(loc).Date()
	y1, m1, d1 := s.to.In(loc).Date()
	if y0 != y1 || m0 != m1 || d0 != d1 {
		layout = "Jan 2 15:04"
	}
	window := "from " + s.from.In(loc).Format(layout) + " to " + s.to.In(loc).Format(layout) + " " + s.from.In(loc).Format("MST")
	var b strings.Builder
	if s.n == 0 {
		b.WriteString("No samples " + window + ".")
	} else {
		b.WriteString(plural(s.n, "sample") + " " + window + ". ")
		b.WriteString("Latest " + Format(s.last.V, u) + ", lowest " + Format(s.lo, u) + ", highest " + Format(s.hi, u) + ".")
		if s.gaps > 0 {
			b.WriteString(" " + plural(s.gaps, "gap") + " in the samples.")
		}
	}
	if limit > 0 {
		b.WriteString(" " + limitLabel + ": " + Format(limit, u) + ".")
	}
	return b.String()
}

// plural writes "1 sample", "2 samples".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
