package chart

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// pointsFrom reads points from fuzz bytes: 16 bytes each, a time offset in
// seconds (any int32, so times go backwards and repeat) and the float64
// bits of the value (so NaN, ±Inf, subnormals and ±MaxFloat64 all occur).
func pointsFrom(data []byte) []Point {
	var ps []Point
	for len(data) >= 12 {
		off := int32(binary.LittleEndian.Uint32(data))
		v := math.Float64frombits(binary.LittleEndian.Uint64(data[4:]))
		ps = append(ps, Point{t0.Add(time.Duration(off) * time.Second), v})
		data = data[12:]
	}
	return ps
}

func FuzzCharts(f *testing.F) {
	seed := func(vs ...float64) []byte {
		var b []byte
		for i, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, uint32(i*10))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(seed(), "", 0.0, int64(0), int64(0), 0, 0, uint8(0))
	f.Add(seed(1), "CPU", 0.0, int64(0), int64(0), 0, 0, uint8(1))
	f.Add(seed(1, math.NaN(), 3, math.Inf(1), -2), "</title><script>", 5.0, int64(-100), int64(100), 10, 10, uint8(2))
	f.Add(seed(math.MaxFloat64, -math.MaxFloat64, 5e-324), "\xff\x00", math.Inf(1), int64(1e6), int64(-1e6), 5000, -1, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, title string, limit float64, from, to int64, w, h int, unit uint8) {
		ps := pointsFrom(data)
		var fromT, toT time.Time
		if from != 0 {
			fromT = t0.Add(time.Duration(from) * time.Second)
		}
		if to != 0 {
			toT = t0.Add(time.Duration(to) * time.Second)
		}
		u := Unit(unit % 4)
		charts := []string{
			string(Line{Title: title, LimitLabel: title, Unit: u, Points: ps, Limit: limit, From: fromT, To: toT, Width: w, Height: h}.SVG()),
			string(Sparkline{Title: title, Unit: u, Points: ps, Max: limit, From: fromT, To: toT, Width: w, Height: h}.SVG()),
		}
		for _, markup := range charts {
			d := parse(t, markup)
			if d.root != "svg" || d.attrs["role"] != "img" {
				t.Fatalf("root %s %v", d.root, d.attrs)
			}
			for _, e := range d.elements {
				if !slices.Contains(allowed, e) {
					t.Fatalf("element <%s> in %s", e, markup)
				}
			}
			if strings.Contains(markup, "NaN") || strings.Contains(markup, "Inf") {
				t.Fatalf("NaN or Inf in %s", markup)
			}
			labels := d.texts["chart-y-label"]
			if len(labels) > 0 && len(slices.Compact(slices.Clone(labels))) != len(labels) {
				t.Fatalf("two y ticks read the same: %q", labels)
			}
		}
	})
}
