package bench

import "testing"

// TestLevelsOff: a series that keeps climbing after the warm-up is a leak;
// one that steps up during the warm-up, or wobbles, is not.
func TestLevelsOff(t *testing.T) {
	for _, tt := range []struct {
		name   string
		v      []float64
		slack  float64
		wantOK bool
	}{
		{"flat", []float64{50, 50, 50, 50, 50, 50, 50, 50, 50, 50}, 0, true},
		{"a step in the warm-up", []float64{10, 40, 50, 50, 51, 50, 49, 50, 50, 50}, 0, true},
		{"noise within a tenth", []float64{50, 50, 50, 52, 48, 53, 49, 54, 51, 53}, 0, true},
		{"a steady climb", []float64{50, 52, 54, 56, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78}, 0, false},
		{"a climb within the slack", []float64{50, 52, 54, 56, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78}, 30, true},
		{"a late jump that stays", []float64{50, 50, 50, 50, 50, 50, 50, 50, 80, 80, 80, 80}, 0, false},
		{"one sample", []float64{7}, 0, true},
		{"none", nil, 0, true},
	} {
		ok, from, to := levelsOff(tt.v, tt.slack)
		if ok != tt.wantOK {
			t.Errorf("%s: levelsOff = %v (%v → %v), want %v", tt.name, ok, from, to, tt.wantOK)
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Host RSS":                     "host-rss",
		"programs' automatic restarts": "programs-automatic-restarts",
		"database size":                "database-size",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
