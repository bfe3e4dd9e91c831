// Package chart draws the dashboard's resource charts as inline SVG,
// server-side, so that a page needs no script and no front-end library to
// show a program's CPU, memory, pids, /state usage or restarts over time.
//
// Two kinds are offered: a [Sparkline] (tiny, no axes, for a row of the
// programs list) and a [Line] chart (axes, time labels, a y-axis in the
// series' [Unit], an optional limit line, gaps where samples are missing).
//
// The output is [template.HTML] built only from formatted numbers, fixed
// markup and escaped text: a program name placed in a title cannot inject
// markup. It is deterministic (the same input gives the same bytes), so
// pages can be compared and cached. Colours come from currentColor and CSS
// classes (see [Stylesheet]), so a light and a dark theme both work by
// setting `color` on the classes.
//
// Values are drawn as given: NaN or ±Inf is a missing sample (the line
// breaks there), values beyond ±1e300 are drawn at ±1e300 so that the
// arithmetic of the scale cannot overflow, and no input makes a chart panic.
package chart

import (
	"html/template"
	"time"
)

// Point is one sample of a series: the value V measured at time T.
type Point struct {
	T time.Time
	V float64
}

// Unit says how a series' values are labelled on the axis and in the
// description.
type Unit int

const (
	// Number is a plain count (pids, restarts): 3, 250, 1.5k, 2M.
	Number Unit = iota
	// Percent is a percentage (CPU of one core, usage of a quota): 42%.
	// Values above 100 (several cores busy) are drawn as they are.
	Percent
	// Bytes is a size (memory, /state usage, network): shown with binary
	// prefixes, 512 MiB, 1.5 GiB.
	Bytes
)

// Line is a chart with axes: time along the bottom, the value on the left.
//
// The zero value draws an empty 600×200 chart that says "No data".
type Line struct {
	// Title is the chart's accessible name (the SVG's <title>), e.g.
	// "Memory of bot-7". It is escaped; it may hold any text.
	Title string
	// Desc is the longer description for screen readers (<desc>). Empty
	// means one generated from the data: the window, the number of samples,
	// the latest, lowest and highest values, the limit and the gaps.
	Desc string
	// Unit labels the values.
	Unit Unit
	// Points are the samples, in any order (they are sorted by time).
	// Points outside [From, To] are left out.
	Points []Point
	// Limit, when above zero, is drawn as a dashed horizontal line (memory
	// against its limit, /state usage against its quota), and the y-axis
	// always reaches it, so usage is seen against the limit.
	Limit float64
	// LimitLabel names the limit line; empty means "limit".
	LimitLabel string
	// From and To are the time window shown. A zero From (To) means the
	// earliest (latest) sample's time.
	From, To time.Time
	// Step is the sampling interval: two consecutive samples more than
	// 2×Step apart are not joined, so the time a program was stopped shows
	// as a gap. Zero means the median interval between the samples.
	Step time.Duration
	// Width and Height are the size in pixels (also the viewBox, so CSS may
	// scale the chart). Zero means 600×200; sizes are kept within
	// 120×60 and 4000×4000.
	Width, Height int
	// Location is the time zone of the time labels; nil means UTC.
	Location *time.Location
}

// Sparkline is a tiny chart with no axes, for a list row: the shape of a
// series and a dot on its latest value.
//
// The zero value draws an empty 120×24 sparkline.
type Sparkline struct {
	// Title is the accessible name (<title>), e.g. "CPU of bot-7". Escaped.
	Title string
	// Unit labels the latest value in the description.
	Unit Unit
	// Points are the samples, in any order. Points outside [From, To] are
	// left out.
	Points []Point
	// From and To are the time window; zero means the samples' span.
	From, To time.Time
	// Step is the sampling interval, as in [Line.Step].
	Step time.Duration
	// Max, when above zero, is the top of the scale (100 for a percentage,
	// the memory limit for memory), so rows of a list compare at a glance.
	// Values above it still show: the scale then reaches the highest value.
	Max float64
	// Width and Height are the size in pixels; zero means 120×24. Sizes are
	// kept within 8×4 and 4000×4000.
	Width, Height int
}

// Default and bounding sizes, in pixels.
const (
	lineWidth, lineHeight   = 600, 200
	lineMinW, lineMinH      = 120, 60
	sparkWidth, sparkHeight = 120, 24
	sparkMinW, sparkMinH    = 8, 4
	maxSize                 = 4000
)

// SVG returns the chart as an <svg> element.
func (c Line) SVG() template.HTML {
	return template.HTML(c.render())
}

// SVG returns the sparkline as an <svg> element.
func (s Sparkline) SVG() template.HTML {
	return template.HTML(s.render())
}

// clampSize returns v, or def when v is zero or negative, kept in [lo, maxSize].
func clampSize(v, def, lo int) int {
	if v <= 0 {
		v = def
	}
	return min(max(v, lo), maxSize)
}
