package chart

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// prefix is a unit's scale for a magnitude: values are divided by div and
// followed by suffix.
type prefix struct {
	div    float64
	suffix string
}

var (
	binaryPrefixes = []prefix{{1, " B"}, {1 << 10, " KiB"}, {1 << 20, " MiB"}, {1 << 30, " GiB"}, {1 << 40, " TiB"}, {1 << 50, " PiB"}, {1 << 60, " EiB"}}
	siPrefixes     = []prefix{{1, ""}, {1e3, "k"}, {1e6, "M"}, {1e9, "G"}, {1e12, "T"}, {1e15, "P"}, {1e18, "E"}}
)

// prefixFor is the largest prefix of the unit not above magnitude m, so a
// value of m reads as at least 1 of it (1.5 GiB rather than 1536 MiB).
func prefixFor(u Unit, m float64) prefix {
	var ps []prefix
	switch u {
	case Bytes:
		ps = binaryPrefixes
	case Percent:
		return prefix{1, "%"}
	default:
		ps = siPrefixes
	}
	m = math.Abs(m)
	best := ps[0]
	for _, p := range ps {
		if m >= p.div {
			best = p
		}
	}
	return best
}

// formatNumber writes v with the given number of decimals, or, for
// magnitudes that fixed notation would spell out at length, with three
// significant digits in exponent form. It never writes "-0".
func formatNumber(v float64, decimals int) string {
	if v == 0 {
		v = 0 // turns -0 into 0
	}
	a := math.Abs(v)
	var s string
	if a >= 1e9 || (a > 0 && a < 1e-6) {
		s = strconv.FormatFloat(v, 'g', 3, 64)
	} else {
		s = strconv.FormatFloat(v, 'f', min(max(decimals, 0), 9), 64)
	}
	if strings.Trim(s, "-0.") == "" {
		return strings.TrimPrefix(s, "-")
	}
	return s
}

// Format writes a value in a unit, for reading rather than for an axis:
// three significant digits with the prefix that suits its own magnitude.
// For example 1.5 GiB, 42%, 1.2k, 7. NaN and infinities are written
// "n/a". The result is plain text: escape it before putting it in markup
// (html/template does).
func Format(v float64, u Unit) string {
	if !finite(v) {
		return "n/a"
	}
	v = clampValue(v)
	p := prefixFor(u, v)
	s := v / p.div
	if p.div == 1 && u != Percent && s == math.Trunc(s) {
		return formatNumber(s, 0) + p.suffix // 3 pids, not 3.00 pids
	}
	decimals := 0
	if a := math.Abs(s); a < 10 {
		decimals = 2
	} else if a < 100 {
		decimals = 1
	}
	return trimZeros(formatNumber(s, decimals)) + p.suffix
}

// trimZeros drops the zeros that end a number's decimals, and a decimal
// point left alone: 1.50 reads 1.5, 2.00 reads 2.
func trimZeros(num string) string {
	if strings.Contains(num, ".") && !strings.Contains(num, "e") {
		num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	}
	return num
}

// ticks is a y-axis: the value range [lo, hi] the chart shows and the
// values (with their labels) where grid lines go.
type ticks struct {
	lo, hi float64
	values []float64
	labels []string
}

// niceStep rounds a raw step up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if !(raw > 0) || !finite(raw) {
		return 1
	}
	e := math.Floor(math.Log10(raw))
	base := math.Pow(10, e)
	if base == 0 || !finite(base) {
		return raw
	}
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*base*(1+1e-9) {
			return m * base
		}
	}
	return 10 * base
}

// yTicks chooses the y-axis for values in [lo, hi] (which should include
// zero) with about want grid lines: the range is widened to whole steps of
// 1, 2, 2.5 or 5 units of the prefix that suits the largest magnitude, and each
// tick is labelled in that prefix with as many decimals as the step needs.
func yTicks(lo, hi float64, u Unit, want int) ticks {
	if !(hi > lo) {
		// A flat series: give it a range of one unit above it, so that it
		// sits on the bottom grid line rather than in an empty box.
		one := 1.0
		if u == Bytes {
			one = 1024
		}
		hi = lo + one
	}
	p := prefixFor(u, math.Max(math.Abs(lo), math.Abs(hi)))
	slo, shi := lo/p.div, hi/p.div
	step := niceStep((shi - slo) / float64(max(want, 1)))
	first, last := math.Floor(slo/step), math.Ceil(shi/step)
	if n := last - first; !(n >= 1 && n <= 50) {
		// Rounding lost the step (a range far narrower than its values):
		// keep the range as it is, with its two ends as ticks.
		return ticks{lo: lo, hi: hi, values: []float64{lo, hi}, labels: []string{Format(lo, u), Format(hi, u)}}
	}
	// As many decimals as the step has (0.25 needs two), so that no two
	// ticks read the same; the zeros that end a label are then dropped
	// (0.5, not 0.50).
	decimals := 0
	for decimals < 9 {
		scaled := step * math.Pow(10, float64(decimals))
		if math.Abs(scaled-math.Round(scaled)) <= 1e-6*scaled {
			break
		}
		decimals++
	}
	t := ticks{lo: first * step * p.div, hi: last * step * p.div}
	for k := first; k <= last; k++ {
		t.values = append(t.values, k*step*p.div)
		t.labels = append(t.labels, trimZeros(formatNumber(k*step, decimals))+p.suffix)
	}
	return t
}

// timeSteps are the intervals time labels may be spaced by.
var timeSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour,
}

// timeTick is one label of the time axis.
type timeTick struct {
	t     time.Time
	label string
}

// xTicks chooses at most max labels for the window [from, to]: the smallest
// interval of timeSteps (or a whole number of weeks) that fits, aligned to
// the clock of loc (10:00, 10:15, ...). A label reads 15:04:05 for steps
// under a minute, 15:04 for steps under a day (the date, Jan 2, at
// midnight), and Jan 2 for steps of days.
func xTicks(from, to time.Time, loc *time.Location, maxN int) []timeTick {
	span := to.Sub(from)
	if span <= 0 || maxN < 1 {
		return nil
	}
	step := time.Duration(0)
	for _, s := range timeSteps {
		if span/s < time.Duration(maxN) { // span/s+1 labels at most
			step = s
			break
		}
	}
	if step == 0 {
		week := 7 * 24 * time.Hour
		weeks := span/week/time.Duration(maxN) + 1
		step = weeks * week
	}
	// Align to the local clock, in whole seconds (every step is one): shift
	// by the zone's offset at the start of the window, round up to the
	// step, shift back. Seconds, not nanoseconds, so that times centuries
	// away from 1970 do not overflow.
	_, off := from.In(loc).Zone()
	secs, stepSecs := from.Unix()+int64(off), int64(step/time.Second)
	first := secs / stepSecs * stepSecs
	if first < secs {
		first += stepSecs
	}
	start := time.Unix(first-int64(off), 0)
	if start.Before(from) {
		start = start.Add(step)
	}
	var out []timeTick
	for t := start; !t.After(to) && len(out) < maxN; t = t.Add(step) {
		lt := t.In(loc)
		var label string
		switch {
		case step < time.Minute:
			label = lt.Format("15:04:05")
		case step >= 24*time.Hour || (lt.Hour() == 0 && lt.Minute() == 0):
			label = lt.Format("Jan 2")
		default:
			label = lt.Format("15:04")
		}
		out = append(out, timeTick{t, label})
	}
	return out
}
