package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/stats"
)

// sampleAt is a sample at t0+d whose fields all derive from n.
func sampleAt(d time.Duration, n int64) stats.Sample {
	return stats.Sample{At: t0.Add(d), CPUPercent: float64(n) / 2, MemoryBytes: n << 20, MemoryLimitBytes: 256 << 20,
		Pids: n, NetRxBytes: 10 * n, NetTxBytes: 20 * n, StateBytesUsed: 4096 * n, StateBytesLimit: 1 << 28, Restarts: int(n % 3)}
}

func fineOf(id string, d time.Duration, n int64) ProgramSample {
	return ProgramSample{ProgramID: id, Resolution: stats.Fine, Sample: sampleAt(d, n)}
}

func coarseOf(id string, d time.Duration, n int64) ProgramSample {
	return ProgramSample{ProgramID: id, Resolution: stats.Coarse, Sample: sampleAt(d, n)}
}

func listStats(t *testing.T, s *Store, id string, r stats.Resolution, since time.Time) []stats.Sample {
	t.Helper()
	got, err := s.ListStats(context.Background(), id, r, since)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestStatsSaveAndList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreate(t, s, Program{ID: "a", UserID: "u"})
	mustCreate(t, s, Program{ID: "b", UserID: "u"})
	// Written out of order, in one batch with another program's and a
	// deleted program's samples.
	err := s.SaveStats(ctx, StatsBatch{Samples: []ProgramSample{
		fineOf("a", 20*time.Second, 3), fineOf("a", 0, 1), fineOf("a", 10*time.Second, 2),
		coarseOf("a", 0, 9), fineOf("b", 0, 5), fineOf("gone", 0, 7),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := listStats(t, s, "a", stats.Fine, time.Time{}), []stats.Sample{sampleAt(0, 1), sampleAt(10*time.Second, 2), sampleAt(20*time.Second, 3)}; !reflect.DeepEqual(got, want) {
		t.Errorf("fine samples of a:\n%+v\nwant\n%+v", got, want)
	}
	if got := listStats(t, s, "a", stats.Fine, t0.Add(10*time.Second)); len(got) != 2 || !got[0].At.Equal(t0.Add(10*time.Second)) {
		t.Errorf("since the second sample: %+v", got)
	}
	if got := listStats(t, s, "a", stats.Coarse, time.Time{}); !reflect.DeepEqual(got, []stats.Sample{sampleAt(0, 9)}) {
		t.Errorf("coarse samples of a: %+v", got)
	}
	if got := listStats(t, s, "b", stats.Fine, time.Time{}); !reflect.DeepEqual(got, []stats.Sample{sampleAt(0, 5)}) {
		t.Errorf("samples of b: %+v", got)
	}
	if got := listStats(t, s, "gone", stats.Fine, time.Time{}); len(got) != 0 {
		t.Errorf("a missing program's samples were kept: %+v", got)
	}
	if got := listStats(t, s, "nobody", stats.Fine, time.Time{}); got == nil || len(got) != 0 {
		t.Errorf("an unknown program's samples: %#v, want an empty list", got)
	}
	// The same time again replaces the row.
	if err := s.SaveStats(ctx, StatsBatch{Samples: []ProgramSample{fineOf("a", 0, 42)}}); err != nil {
		t.Fatal(err)
	}
	if got := listStats(t, s, "a", stats.Fine, time.Time{}); len(got) != 3 || got[0] != sampleAt(0, 42) {
		t.Errorf("after a second write at the same time: %+v", got)
	}
}

func TestStatsRefusesBadSamples(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, Program{ID: "a", UserID: "u"})
	for name, ps := range map[string]ProgramSample{
		"no program":         {Resolution: stats.Fine},
		"unknown resolution": {ProgramID: "a", Resolution: "raw"},
	} {
		err := s.SaveStats(context.Background(), StatsBatch{Samples: []ProgramSample{fineOf("a", 0, 1), ps}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if got := listStats(t, s, "a", stats.Fine, time.Time{}); len(got) != 0 {
		t.Errorf("a refused batch wrote %+v", got)
	}
}

// TestStatsPrune: each series loses what is older than its cutoff, for
// every program, and keeps the rest.
func TestStatsPrune(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		prune      map[stats.Resolution]time.Time
		fine, coar int // rows of each program left, of 4 fine and 4 coarse
	}{
		"nothing":                 {nil, 4, 4},
		"fine before the third":   {map[stats.Resolution]time.Time{stats.Fine: t0.Add(20 * time.Second)}, 2, 4},
		"coarse before the first": {map[stats.Resolution]time.Time{stats.Coarse: t0}, 4, 4},
		"both":                    {map[stats.Resolution]time.Time{stats.Fine: t0.Add(time.Hour), stats.Coarse: t0.Add(2 * time.Minute)}, 0, 2},
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			var batch []ProgramSample
			for _, id := range []string{"a", "b"} {
				mustCreate(t, s, Program{ID: id, UserID: "u"})
				for i := int64(0); i < 4; i++ {
					batch = append(batch, fineOf(id, time.Duration(i)*10*time.Second, i), coarseOf(id, time.Duration(i)*time.Minute, i))
				}
			}
			if err := s.SaveStats(ctx, StatsBatch{Samples: batch}); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveStats(ctx, StatsBatch{PruneBefore: c.prune}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"a", "b"} {
				f, co := listStats(t, s, id, stats.Fine, time.Time{}), listStats(t, s, id, stats.Coarse, time.Time{})
				if len(f) != c.fine || len(co) != c.coar {
					t.Errorf("%s keeps %d fine and %d coarse samples, want %d and %d", id, len(f), len(co), c.fine, c.coar)
				}
				if len(f) > 0 && f[len(f)-1].At != t0.Add(30*time.Second) {
					t.Errorf("%s: the newest fine sample was pruned: %+v", id, f)
				}
			}
		})
	}
}

// TestStatsPruneUsesTheKey: pruning seeks each program's oldest rows
// through the primary key instead of reading every row of the table (a
// thousand programs keep about 1.8 million).
func TestStatsPruneUsesTheKey(t *testing.T) {
	s := newStore(t)
	rows, err := s.w.QueryContext(context.Background(), `EXPLAIN QUERY PLAN DELETE FROM program_stats
WHERE program_id IN (SELECT program_id FROM programs) AND resolution = ? AND at < ?`, "fine", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "; ")
	if strings.Contains(text, "SCAN program_stats") || !strings.Contains(text, "SEARCH program_stats USING PRIMARY KEY (program_id=? AND resolution=? AND at<?)") {
		t.Errorf("prune plan: %s", text)
	}
}

func TestStatsGoWithTheProgram(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreate(t, s, Program{ID: "a", UserID: "u"})
	mustCreate(t, s, Program{ID: "b", UserID: "u"})
	if err := s.SaveStats(ctx, StatsBatch{Samples: []ProgramSample{fineOf("a", 0, 1), coarseOf("a", 0, 1), fineOf("b", 0, 2)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProgram(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM program_stats WHERE program_id = 'a'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows of a deleted program's history (%v)", n, err)
	}
	if got := listStats(t, s, "b", stats.Fine, time.Time{}); len(got) != 1 {
		t.Errorf("another program's history: %+v", got)
	}
}

// TestUnfoldedStats: the fine samples after each program's latest coarse
// step, which a Host that stopped in the middle of a step folds again.
func TestUnfoldedStats(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, id := range []string{"a", "b", "c"} {
		mustCreate(t, s, Program{ID: id, UserID: "u"})
	}
	var batch []ProgramSample
	for i := int64(0); i < 12; i++ { // two minutes of fine samples
		batch = append(batch, fineOf("a", time.Duration(i)*10*time.Second, i), fineOf("b", time.Duration(i)*10*time.Second, i))
	}
	batch = append(batch, coarseOf("a", 0, 1)) // a's first minute is folded; b has no coarse sample
	if err := s.SaveStats(ctx, StatsBatch{Samples: batch}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UnfoldedStats(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got["a"]) != 6 || !got["a"][0].At.Equal(t0.Add(time.Minute)) {
		t.Errorf("unfolded samples of a: %+v, want its second minute's 6", got["a"])
	}
	if len(got["b"]) != 12 || !got["b"][0].At.Equal(t0) {
		t.Errorf("unfolded samples of b: %d, want all 12", len(got["b"]))
	}
	if _, ok := got["c"]; ok || len(got) != 2 {
		t.Errorf("programs with unfolded samples: %v", got)
	}
}
