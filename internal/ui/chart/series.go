package chart

import (
	"math"
	"slices"
	"time"
)

// bigValue bounds the values drawn, so that spans, tick steps and their
// multiples stay finite (a span of two values is at most 2e300).
const bigValue = 1e300

// series is a cleaned-up set of samples within a window: the finite samples
// cut into segments at missing samples and at gaps in time.
type series struct {
	from, to time.Time
	segments [][]Point // each non-empty, in time order
	n        int       // finite samples in the window
	gaps     int       // breaks between segments
	last     Point     // the latest finite sample (valid when n > 0)
	lo, hi   float64   // lowest and highest finite value (valid when n > 0)
}

// clampValue keeps a finite value within ±bigValue.
func clampValue(v float64) float64 {
	return math.Max(-bigValue, math.Min(bigValue, v))
}

// finite tells whether v is neither NaN nor infinite.
func finite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}

// newSeries sorts the points by time, keeps those in the window (a zero
// bound is the samples' own), and cuts them into segments: a NaN or
// infinite value, or two samples more than 2×step apart (step zero: the
// median interval), breaks the line.
func newSeries(points []Point, from, to time.Time, step time.Duration) series {
	ps := slices.Clone(points)
	slices.SortStableFunc(ps, func(a, b Point) int { return a.T.Compare(b.T) })

	var s series
	s.from, s.to = from, to
	if len(ps) > 0 {
		if from.IsZero() {
			s.from = ps[0].T
		}
		if to.IsZero() {
			s.to = ps[len(ps)-1].T
		}
	}
	if !s.to.After(s.from) {
		// One instant (or a window given backwards): centre it in a minute
		// so that a single sample still has a place on the axis.
		mid := s.from
		s.from, s.to = mid.Add(-30*time.Second), mid.Add(30*time.Second)
	}

	in := ps[:0]
	for _, p := range ps {
		if p.T.Before(s.from) || p.T.After(s.to) {
			continue
		}
		in = append(in, p)
	}

	if step <= 0 {
		step = medianStep(in)
	}
	maxGap := time.Duration(math.MaxInt64)
	if step > 0 && step < time.Duration(math.MaxInt64/2) {
		maxGap = 2 * step
	}

	var cur []Point
	var prev time.Time
	cut := func() {
		if len(cur) > 0 {
			s.segments = append(s.segments, cur)
			cur = nil
		}
	}
	for _, p := range in {
		if !finite(p.V) {
			cut()
			continue
		}
		if len(cur) > 0 && p.T.Sub(prev) > maxGap {
			cut()
		}
		p.V = clampValue(p.V)
		cur = append(cur, p)
		prev = p.T
		if s.n == 0 {
			s.lo, s.hi = p.V, p.V
		} else {
			s.lo, s.hi = math.Min(s.lo, p.V), math.Max(s.hi, p.V)
		}
		s.n++
		s.last = p
	}
	cut()
	s.gaps = max(0, len(s.segments)-1)
	return s
}

// medianStep is the median interval between consecutive samples (zero with
// fewer than two samples). Equal times do not count as an interval.
func medianStep(ps []Point) time.Duration {
	var ds []time.Duration
	for i := 1; i < len(ps); i++ {
		if d := ps[i].T.Sub(ps[i-1].T); d > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// xy is a point in the SVG's coordinates.
type xy struct{ x, y float64 }

// plot maps samples to pixels inside the box [x0, x1] × [y0, y1] (y0 the
// top) for the value range [lo, hi].
type plot struct {
	x0, x1, y0, y1 float64
	from, to       time.Time
	lo, hi         float64
}

// x is the horizontal position of time t, kept inside the box.
func (p plot) x(t time.Time) float64 {
	span := p.to.Sub(p.from).Seconds()
	f := 0.0
	if span > 0 {
		f = t.Sub(p.from).Seconds() / span
	}
	return p.x0 + math.Max(0, math.Min(1, f))*(p.x1-p.x0)
}

// y is the vertical position of value v, kept inside the box.
func (p plot) y(v float64) float64 {
	f := 0.0
	if p.hi > p.lo {
		f = (v - p.lo) / (p.hi - p.lo)
	}
	if !finite(f) {
		f = 0
	}
	return p.y1 - math.Max(0, math.Min(1, f))*(p.y1-p.y0)
}

// project maps a segment to pixels. A segment with more samples than the
// box has pixel columns keeps, per column, its lowest and highest sample in
// time order: the shape (and every spike) survives, the markup stays
// bounded by the chart's width rather than the history's length.
func (p plot) project(seg []Point) []xy {
	out := make([]xy, 0, min(len(seg), 2*int(p.x1-p.x0)+2))
	if len(seg) <= int(p.x1-p.x0) {
		for _, pt := range seg {
			out = append(out, xy{p.x(pt.T), p.y(pt.V)})
		}
		return out
	}
	col := func(pt Point) int { return int(math.Floor(p.x(pt.T))) }
	for i := 0; i < len(seg); {
		j, c := i, col(seg[i])
		lo, hi := i, i
		for j < len(seg) && col(seg[j]) == c {
			if seg[j].V < seg[lo].V {
				lo = j
			}
			if seg[j].V > seg[hi].V {
				hi = j
			}
			j++
		}
		first, second := min(lo, hi), max(lo, hi)
		out = append(out, xy{p.x(seg[first].T), p.y(seg[first].V)})
		if second != first {
			out = append(out, xy{p.x(seg[second].T), p.y(seg[second].V)})
		}
		i = j
	}
	return out
}
