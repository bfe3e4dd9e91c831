package chart

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the start of the test windows: 10:00 UTC.
var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

const mib = 1 << 20

// every returns n samples step apart from start, valued by f(i).
func every(start time.Time, step time.Duration, n int, f func(i int) float64) []Point {
	ps := make([]Point, n)
	for i := range ps {
		ps[i] = Point{start.Add(time.Duration(i) * step), f(i)}
	}
	return ps
}

// doc is what a chart's markup holds, read back with a strict XML parser:
// a chart that is not well-formed fails the test.
type doc struct {
	root     string
	attrs    map[string]string // of the root
	elements []string          // every element's name, in order
	title    string
	desc     string
	texts    map[string][]string // the <text> contents by class
	paths    map[string][]string // the d attributes by class
	circles  map[string]int      // circles by class
}

func parse(t testing.TB, markup string) doc {
	t.Helper()
	d := doc{attrs: map[string]string{}, texts: map[string][]string{}, paths: map[string][]string{}, circles: map[string]int{}}
	dec := xml.NewDecoder(strings.NewReader(markup))
	dec.Strict = true
	var stack []xml.StartElement
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("markup is not well-formed XML: %v\n%s", err, markup)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := func(name string) string {
				for _, a := range tok.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			if len(stack) == 0 {
				if d.root != "" {
					t.Fatalf("two root elements in %s", markup)
				}
				d.root = tok.Name.Local
				for _, a := range tok.Attr {
					d.attrs[a.Name.Local] = a.Value
				}
			}
			d.elements = append(d.elements, tok.Name.Local)
			switch tok.Name.Local {
			case "path":
				d.paths[attr("class")] = append(d.paths[attr("class")], attr("d"))
			case "circle":
				d.circles[attr("class")]++
			}
			stack = append(stack, tok)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if strings.TrimSpace(string(tok)) != "" {
					t.Fatalf("text outside the root element: %q", tok)
				}
				continue
			}
			top := stack[len(stack)-1]
			switch top.Name.Local {
			case "title":
				d.title += string(tok)
			case "desc":
				d.desc += string(tok)
			case "text":
				class := ""
				for _, a := range top.Attr {
					if a.Name.Local == "class" {
						class = a.Value
					}
				}
				d.texts[class] = append(d.texts[class], string(tok))
			}
		}
	}
	return d
}

// commands counts the M and L commands of a path's d attributes.
func commands(ds []string) (m, l int) {
	for _, d := range ds {
		m += strings.Count(d, "M")
		l += strings.Count(d, "L")
	}
	return m, l
}

func TestLineStructure(t *testing.T) {
	minute := every(t0, 10*time.Second, 361, func(i int) float64 { return float64(i) * mib / 2 }) // 0 .. 180 MiB over an hour
	withHole := slices.Concat(
		every(t0, 10*time.Second, 60, func(int) float64 { return 40 }),                     // 10:00-10:09:50
		every(t0.Add(20*time.Minute), 10*time.Second, 60, func(int) float64 { return 60 }), // 10:20-10:29:50
	)
	withNaN := every(t0, time.Minute, 61, func(i int) float64 {
		if i == 30 {
			return math.NaN()
		}
		return 5
	})
	lone := slices.Concat(
		every(t0, time.Minute, 10, func(int) float64 { return 1 }),
		[]Point{{t0.Add(30 * time.Minute), 2}},
		every(t0.Add(50*time.Minute), time.Minute, 11, func(int) float64 { return 3 }),
	)
	tests := []struct {
		name       string
		chart      Line
		segments   int // M commands of the series
		lines      int // L commands of the series
		dots       int
		yLabels    []string
		xLabels    []string
		limitLabel []string
		empty      bool
		descHas    []string
	}{
		{
			name:       "memory against its limit",
			chart:      Line{Title: "Memory", Unit: Bytes, Points: minute, Limit: 512 * mib, From: t0, To: t0.Add(time.Hour)},
			segments:   1,
			lines:      360,
			yLabels:    []string{"0 MiB", "200 MiB", "400 MiB", "600 MiB"},
			xLabels:    []string{"10:00", "10:10", "10:20", "10:30", "10:40", "10:50", "11:00"},
			limitLabel: []string{"limit 512 MiB"},
			descHas:    []string{"361 samples from 10:00 to 11:00 UTC", "Latest 180 MiB", "lowest 0 B", "limit: 512 MiB"},
		},
		{
			name:     "a stopped program leaves a gap",
			chart:    Line{Title: "CPU", Unit: Percent, Points: withHole, From: t0, To: t0.Add(30 * time.Minute)},
			segments: 2,
			lines:    118,
			yLabels:  []string{"0%", "20%", "40%", "60%"},
			xLabels:  []string{"10:00", "10:05", "10:10", "10:15", "10:20", "10:25", "10:30"},
			descHas:  []string{"120 samples", "1 gap in the samples", "highest 60%"},
		},
		{
			name:     "a missing sample (NaN) breaks the line",
			chart:    Line{Unit: Number, Points: withNaN},
			segments: 2,
			lines:    58,
			yLabels:  []string{"0", "2", "4", "6"},
			descHas:  []string{"60 samples", "1 gap"},
		},
		{
			name:     "a lone sample between gaps is a dot",
			chart:    Line{Unit: Number, Points: lone, Step: time.Minute},
			segments: 2,
			lines:    19,
			dots:     1,
			descHas:  []string{"2 gaps"},
		},
		{
			name:    "no samples",
			chart:   Line{Title: "Pids", From: t0, To: t0.Add(time.Hour)},
			empty:   true,
			yLabels: []string{"0", "0.25", "0.5", "0.75", "1"},
			xLabels: []string{"10:00", "10:10", "10:20", "10:30", "10:40", "10:50", "11:00"},
			descHas: []string{"No samples from 10:00 to 11:00 UTC."},
		},
		{
			name:    "one sample",
			chart:   Line{Unit: Percent, Points: []Point{{t0, 12.5}}},
			dots:    1,
			yLabels: []string{"0%", "5%", "10%", "15%"},
			xLabels: []string{"09:59:30", "09:59:40", "09:59:50", "10:00:00", "10:00:10", "10:00:20", "10:00:30"},
			descHas: []string{"1 sample from 09:59 to 10:00 UTC", "Latest 12.5%"},
		},
		{
			name:     "negative values extend the axis below zero",
			chart:    Line{Unit: Number, Points: every(t0, time.Minute, 11, func(i int) float64 { return float64(i - 5) })},
			segments: 1,
			lines:    10,
			yLabels:  []string{"-5", "-2.5", "0", "2.5", "5"},
		},
		{
			name:     "limit label of the caller",
			chart:    Line{Unit: Bytes, Points: minute, Limit: 1 << 30, LimitLabel: "quota"},
			segments: 1,
			lines:    360,
			yLabels:  []string{"0 GiB", "0.25 GiB", "0.5 GiB", "0.75 GiB", "1 GiB"},
			limitLabel: []string{
				"quota 1 GiB",
			},
			descHas: []string{"quota: 1 GiB"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			markup := string(tt.chart.SVG())
			d := parse(t, markup)
			if d.root != "svg" || d.attrs["role"] != "img" || !strings.Contains(d.attrs["class"], "chart-line") {
				t.Fatalf("root %s %v, want an svg of role img and class chart-line", d.root, d.attrs)
			}
			if d.attrs["viewBox"] != "0 0 600 200" {
				t.Errorf("viewBox %q, want 0 0 600 200 (the default size)", d.attrs["viewBox"])
			}
			if d.title != tt.chart.Title {
				t.Errorf("title %q, want %q", d.title, tt.chart.Title)
			}
			m, l := commands(d.paths["chart-series"])
			if m != tt.segments || l != tt.lines {
				t.Errorf("series path has %d M and %d L, want %d and %d", m, l, tt.segments, tt.lines)
			}
			if am, _ := commands(d.paths["chart-area"]); am != tt.segments {
				t.Errorf("area path has %d segments, want %d", am, tt.segments)
			}
			if d.circles["chart-dot"] != tt.dots {
				t.Errorf("%d dots, want %d", d.circles["chart-dot"], tt.dots)
			}
			if tt.yLabels != nil && !slices.Equal(d.texts["chart-y-label"], tt.yLabels) {
				t.Errorf("y labels %q, want %q", d.texts["chart-y-label"], tt.yLabels)
			}
			if tt.xLabels != nil && !slices.Equal(d.texts["chart-x-label"], tt.xLabels) {
				t.Errorf("x labels %q, want %q", d.texts["chart-x-label"], tt.xLabels)
			}
			if !slices.Equal(d.texts["chart-limit-label"], tt.limitLabel) {
				t.Errorf("limit label %q, want %q", d.texts["chart-limit-label"], tt.limitLabel)
			}
			if got := len(d.texts["chart-empty"]) == 1; got != tt.empty {
				t.Errorf("says No data: %v, want %v", got, tt.empty)
			}
			for _, s := range tt.descHas {
				if !strings.Contains(d.desc, s) {
					t.Errorf("desc %q lacks %q", d.desc, s)
				}
			}
		})
	}
}

func TestSparklineStructure(t *testing.T) {
	tests := []struct {
		name     string
		spark    Sparkline
		segments int
		lines    int
		dots     int // lone samples
		last     int
		desc     string
	}{
		{"empty", Sparkline{Title: "CPU"}, 0, 0, 0, 0, "No data"},
		{"one sample", Sparkline{Points: []Point{{t0, 3}}, Unit: Percent}, 0, 0, 1, 1, "Latest 3%, highest 3%"},
		{"a series", Sparkline{Points: every(t0, time.Second, 30, func(i int) float64 { return float64(i) }), Unit: Number}, 1, 29, 0, 1, "Latest 29, highest 29"},
		{"a gap", Sparkline{Points: slices.Concat(
			every(t0, time.Second, 10, func(int) float64 { return 1 }),
			every(t0.Add(time.Minute), time.Second, 10, func(int) float64 { return 2 }),
		)}, 2, 18, 0, 1, "Latest 2, highest 2, 1 gap in the samples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parse(t, string(tt.spark.SVG()))
			if d.root != "svg" || d.attrs["role"] != "img" || d.attrs["viewBox"] != "0 0 120 24" {
				t.Fatalf("root %s %v, want an svg of role img, 120×24", d.root, d.attrs)
			}
			if slices.Contains(d.elements, "text") {
				t.Errorf("a sparkline has no labels; got %v", d.texts)
			}
			m, l := commands(d.paths["chart-series"])
			if m != tt.segments || l != tt.lines {
				t.Errorf("series path has %d M and %d L, want %d and %d", m, l, tt.segments, tt.lines)
			}
			if d.circles["chart-dot"] != tt.dots || d.circles["chart-last"] != tt.last {
				t.Errorf("dots %v, want %d lone and %d latest", d.circles, tt.dots, tt.last)
			}
			if d.desc != tt.desc {
				t.Errorf("desc %q, want %q", d.desc, tt.desc)
			}
		})
	}
}

// The sparkline's Max puts rows of a list on one scale: 50% of a 100% scale
// sits at half height, whatever the row's own highest value.
func TestSparklineMax(t *testing.T) {
	ps := every(t0, time.Second, 2, func(int) float64 { return 50 })
	d := parse(t, string(Sparkline{Points: ps, Max: 100, Height: 23}.SVG()))
	want := "M1.5 11.5L118.5 11.5" // y = 21.5 - 0.5×20
	if got := d.paths["chart-series"]; len(got) != 1 || got[0] != want {
		t.Errorf("path %q, want %q", got, want)
	}
}

// hostile are titles that try to break out of the <title> element, the
// attribute quoting, or the encoding.
var hostile = []string{
	`</title><script>alert(1)</script>`,
	`"><svg onload="alert(1)">`,
	`' onmouseover='alert(1)`,
	`<![CDATA[ ]]><foreignObject><iframe src="javascript:alert(1)"></iframe></foreignObject>`,
	"bot\x00name\x1b[31m\ufffe",
	"\xff\xfe</desc>",
	`&lt;script&gt; stays text`,
	strings.Repeat("<b>", 10000),
}

// allowed is every element a chart may hold: anything else came from input.
var allowed = []string{"svg", "title", "desc", "g", "line", "text", "path", "circle"}

func TestHostileTextIsEscaped(t *testing.T) {
	for _, title := range hostile {
		charts := map[string]string{
			"line title":  string(Line{Title: title, Points: every(t0, time.Minute, 5, func(int) float64 { return 1 })}.SVG()),
			"line desc":   string(Line{Desc: title}.SVG()),
			"limit label": string(Line{Limit: 10, LimitLabel: title}.SVG()),
			"spark title": string(Sparkline{Title: title}.SVG()),
		}
		for where, markup := range charts {
			d := parse(t, markup) // fails on markup that is not well-formed
			for _, e := range d.elements {
				if !slices.Contains(allowed, e) {
					t.Errorf("%s %q: an element <%s> came through", where, title, e)
				}
			}
			if strings.Contains(markup, "<script") || strings.Contains(markup, "<iframe") || strings.Contains(markup, `onload="`) || strings.Contains(markup, "<foreignObject") {
				t.Errorf("%s %q: unescaped markup in %s", where, title, markup)
			}
			if n := strings.Count(markup, "<svg"); n != 1 {
				t.Errorf("%s %q: %d <svg> elements", where, title, n)
			}
			if len(markup) > 20000 {
				t.Errorf("%s: %d bytes for a %d-byte title: the text is not bounded", where, len(markup), len(title))
			}
		}
	}
	// What is escaped reads back as the text it was.
	d := parse(t, string(Line{Title: `a < b & "c" 'd'`}.SVG()))
	if d.title != `a < b & "c" 'd'` {
		t.Errorf("title reads back as %q", d.title)
	}
}

func TestPathologicalValues(t *testing.T) {
	tests := map[string][]Point{
		"NaN and Inf only": {{t0, math.NaN()}, {t0.Add(time.Second), math.Inf(1)}, {t0.Add(2 * time.Second), math.Inf(-1)}},
		"huge":             {{t0, math.MaxFloat64}, {t0.Add(time.Second), -math.MaxFloat64}, {t0.Add(2 * time.Second), 1e300}},
		"tiny":             {{t0, 1e-300}, {t0.Add(time.Second), 5e-324}},
		"all equal":        {{t0, 7}, {t0.Add(time.Second), 7}},
		"all zero":         {{t0, 0}, {t0.Add(time.Second), 0}},
		"same instant":     {{t0, 1}, {t0, 2}, {t0, 3}},
		"unsorted":         {{t0.Add(2 * time.Second), 1}, {t0, 2}, {t0.Add(time.Second), 3}},
		"far times":        {{time.Time{}, 1}, {time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 2}},
		"negative only":    {{t0, -1e12}, {t0.Add(time.Hour), -3}},
	}
	for name, ps := range tests {
		t.Run(name, func(t *testing.T) {
			for _, u := range []Unit{Number, Percent, Bytes, Unit(99)} {
				charts := []string{
					string(Line{Points: ps, Unit: u, Limit: math.Inf(1)}.SVG()),
					string(Line{Points: ps, Unit: u, Limit: 1e308, Width: -5, Height: 1 << 30}.SVG()),
					string(Sparkline{Points: ps, Unit: u, Max: math.NaN()}.SVG()),
				}
				for _, markup := range charts {
					parse(t, markup)
					if strings.Contains(markup, "NaN") || strings.Contains(markup, "Inf") {
						t.Errorf("unit %d: NaN or Inf in the markup: %s", u, markup)
					}
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	ps := every(t0, 5*time.Second, 500, func(i int) float64 { return math.Sin(float64(i)/20) * 100 })
	want := Line{Points: ps, Unit: Percent, Limit: 80}.SVG()
	shuffled := slices.Clone(ps)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if got := (Line{Points: shuffled, Unit: Percent, Limit: 80}).SVG(); got != want {
		t.Errorf("the order of the points changed the chart")
	}
	if got := (Line{Points: ps, Unit: Percent, Limit: 80}).SVG(); got != want {
		t.Errorf("two renderings differ")
	}
	if slices.Equal(shuffled, ps) {
		t.Fatal("the shuffle did nothing")
	}
	// The caller's slice is not reordered.
	before := slices.Clone(shuffled)
	_ = Sparkline{Points: shuffled}.SVG()
	if !slices.Equal(before, shuffled) {
		t.Errorf("SVG sorted the caller's slice")
	}
}

// A day of one-second samples is drawn with at most two points per pixel
// column, keeping the spikes.
func TestLongHistoryIsBounded(t *testing.T) {
	const n = 86400
	ps := every(t0, time.Second, n, func(i int) float64 {
		if i == 40000 {
			return 1000 // one spike
		}
		return float64(i % 7)
	})
	markup := string(Line{Points: ps, Width: 600}.SVG())
	d := parse(t, markup)
	_, l := commands(d.paths["chart-series"])
	if l > 2*600 {
		t.Errorf("%d L commands for a 600-pixel chart", l)
	}
	if len(markup) > 64<<10 {
		t.Errorf("%d bytes of markup", len(markup))
	}
	// The spike is the top of the scale, so it reaches the plot's top.
	if !regexp.MustCompile(`L[0-9.]+ 10[L"]`).MatchString(d.paths["chart-series"][0]) {
		t.Errorf("the spike was lost in the downsampling")
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		v    float64
		u    Unit
		want string
	}{
		{0, Bytes, "0 B"},
		{512, Bytes, "512 B"},
		{1536, Bytes, "1.5 KiB"},
		{512 * mib, Bytes, "512 MiB"},
		{1.5 * (1 << 30), Bytes, "1.5 GiB"},
		{123.456 * mib, Bytes, "123 MiB"},
		{12.345 * mib, Bytes, "12.3 MiB"},
		{1 << 62, Bytes, "4 EiB"},
		{42, Percent, "42%"},
		{3.14159, Percent, "3.14%"},
		{250, Percent, "250%"},
		{3, Number, "3"},
		{1234, Number, "1.23k"},
		{2e6, Number, "2M"},
		{-1500, Number, "-1.5k"},
		{0.5, Number, "0.5"},
		{math.NaN(), Number, "n/a"},
		{math.Inf(-1), Bytes, "n/a"},
		{math.MaxFloat64, Percent, "1e+300%"},
		{math.Copysign(0, -1), Percent, "0%"},
	}
	for _, tt := range tests {
		if got := Format(tt.v, tt.u); got != tt.want {
			t.Errorf("Format(%v, %d) = %q, want %q", tt.v, tt.u, got, tt.want)
		}
	}
}

func TestYTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		u      Unit
		want   []string
	}{
		{0, 100, Percent, []string{"0%", "25%", "50%", "75%", "100%"}},
		{0, 97, Percent, []string{"0%", "25%", "50%", "75%", "100%"}},
		{0, 1, Percent, []string{"0%", "0.25%", "0.5%", "0.75%", "1%"}},
		{0, 3, Number, []string{"0", "1", "2", "3"}},
		{0, 12000, Number, []string{"0k", "5k", "10k", "15k"}},
		{0, 3 << 30, Bytes, []string{"0 GiB", "1 GiB", "2 GiB", "3 GiB"}},
		{-10, 10, Number, []string{"-10", "-5", "0", "5", "10"}},
		{0, 0, Bytes, []string{"0 KiB", "0.25 KiB", "0.5 KiB", "0.75 KiB", "1 KiB"}},
	}
	for _, tt := range tests {
		got := yTicks(tt.lo, tt.hi, tt.u, 4)
		if !slices.Equal(got.labels, tt.want) {
			t.Errorf("yTicks(%v, %v) labels %q, want %q", tt.lo, tt.hi, got.labels, tt.want)
		}
		if got.lo > tt.lo || got.hi < tt.hi || got.values[0] != got.lo || got.values[len(got.values)-1] != got.hi {
			t.Errorf("yTicks(%v, %v): range [%v, %v] with ticks %v does not cover the values", tt.lo, tt.hi, got.lo, got.hi, got.values)
		}
	}
}

func TestXTicks(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	tests := []struct {
		name     string
		from, to time.Time
		loc      *time.Location
		max      int
		want     []string
	}{
		{"an hour", t0, t0.Add(time.Hour), time.UTC, 7, []string{"10:00", "10:10", "10:20", "10:30", "10:40", "10:50", "11:00"}},
		{"unaligned start", t0.Add(7 * time.Minute), t0.Add(67 * time.Minute), time.UTC, 5, []string{"10:15", "10:30", "10:45", "11:00"}},
		{"a day, midnight shows the date", t0.Add(-10 * time.Hour), t0.Add(14 * time.Hour), time.UTC, 7, []string{"Nov 30", "06:00", "12:00", "18:00", "Dec 1"}},
		{"local clock", t0, t0.Add(time.Hour), ist, 3, []string{"15:30", "16:00", "16:30"}},
		{"seconds", t0, t0.Add(time.Minute), time.UTC, 5, []string{"10:00:00", "10:00:15", "10:00:30", "10:00:45", "10:01:00"}},
		{"weeks", t0, t0.Add(60 * 24 * time.Hour), time.UTC, 4, []string{"Dec 3", "Dec 24", "Jan 14"}},
		{"empty window", t0, t0, time.UTC, 5, nil},
		{"far from 1970", time.Time{}, time.Time{}.Add(time.Hour), time.UTC, 2, []string{"Jan 1", "01:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tick := range xTicks(tt.from, tt.to, tt.loc, tt.max) {
				got = append(got, tick.label)
				if tick.t.Before(tt.from) || tick.t.After(tt.to) {
					t.Errorf("tick %v outside the window", tick.t)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("labels %q, want %q", got, tt.want)
			}
		})
	}
}
