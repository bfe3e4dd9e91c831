package alerts

import (
	"testing"
	"time"

	"github.com/hershyorg/hershy/internal/leakcheck"
	"github.com/hershyorg/hershy/internal/lifecycle"
)

// TestMain fails the package when goroutines outlive its tests (servers,
// senders' connections).
func TestMain(m *testing.M) { leakcheck.Main(m) }

func code(n int) *int { return &n }

func TestClassify(t *testing.T) {
	L := lifecycle.Program{}
	with := func(s lifecycle.State, f func(*lifecycle.Program)) lifecycle.Program {
		p := L
		p.State = s
		if f != nil {
			f(&p)
		}
		return p
	}
	exit := func(c int, oom bool) func(*lifecycle.Program) {
		return func(p *lifecycle.Program) { p.LastExitCode, p.LastOOM = code(c), oom }
	}
	tests := []struct {
		name       string
		prev, next lifecycle.Program
		want       Kind
	}{
		{"crash while ready", with(lifecycle.Ready, nil), with(lifecycle.Error, exit(2, false)), Crashed},
		{"crash while starting", with(lifecycle.Starting, nil), with(lifecycle.Error, exit(1, false)), Crashed},
		{"memory kill", with(lifecycle.Ready, nil), with(lifecycle.Error, exit(137, true)), OOMKilled},
		{"clean exit under always", with(lifecycle.Ready, nil), with(lifecycle.Error, exit(0, false)), ""},
		{"clean exit, stopping", with(lifecycle.Ready, nil), with(lifecycle.Stopping, exit(0, false)), ""},
		{"exit while stopping", with(lifecycle.Stopping, nil), with(lifecycle.Stopped, exit(143, false)), ""},
		{"launch refused", with(lifecycle.Starting, nil), with(lifecycle.Error, func(p *lifecycle.Program) { p.ErrorMsg = "start failed: x" }), ""},
		{"build failed", with(lifecycle.Building, nil), with(lifecycle.Error, func(p *lifecycle.Program) { p.ErrorMsg = "build failed: syntax" }), BuildFailed},
		{"build cancelled", with(lifecycle.Building, nil), with(lifecycle.Stopped, nil), ""},
		{"built", with(lifecycle.Building, nil), with(lifecycle.Starting, nil), ""},
		{"stop failed", with(lifecycle.Stopping, nil), with(lifecycle.Error, func(p *lifecycle.Program) { p.ErrorMsg = "stop failed: x" }), ""},
		{"no change", with(lifecycle.Error, exit(1, false)), with(lifecycle.Error, exit(1, false)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Classify(tt.prev, tt.next)
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("Classify = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}

func TestCrashLoops(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }
	rule := LoopRule{Crashes: 3, Window: 10 * time.Minute}
	type step struct {
		program string
		minute  float64
		want    bool // the crash completes a loop the webhook is told of
		count   int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"three within the window", []step{{"p", 0, false, 1}, {"p", 1, false, 2}, {"p", 2, true, 3}}},
		{"spread over more than the window", []step{{"p", 0, false, 1}, {"p", 6, false, 2}, {"p", 12, false, 2}, {"p", 15, true, 3}}},
		{"told once per window", []step{{"p", 0, false, 1}, {"p", 1, false, 2}, {"p", 2, true, 3}, {"p", 3, false, 4}, {"p", 11.9, false, 3}, {"p", 12.5, true, 3}}},
		{"programs counted apart", []step{{"p", 0, false, 1}, {"q", 1, false, 1}, {"p", 2, false, 2}, {"q", 3, false, 2}, {"q", 4, true, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCrashLoops()
			for i, s := range tt.steps {
				c.Crash(s.program, at(s.minute))
				n, got := c.Loop("w", s.program, rule, at(s.minute))
				if got != s.want || n != s.count {
					t.Fatalf("step %d (%s at %.1f min): Loop = %d, %v; want %d, %v", i, s.program, s.minute, n, got, s.count, s.want)
				}
			}
		})
	}
	t.Run("webhooks told apart", func(t *testing.T) {
		c := NewCrashLoops()
		for m := range 3 {
			c.Crash("p", at(float64(m)))
		}
		if _, ok := c.Loop("w1", "p", rule, at(2)); !ok {
			t.Fatal("w1 not told")
		}
		if _, ok := c.Loop("w2", "p", LoopRule{Crashes: 2, Window: 5 * time.Minute}, at(2)); !ok {
			t.Fatal("w2, with its own rule, not told")
		}
		if _, ok := c.Loop("w1", "p", rule, at(2)); ok {
			t.Fatal("w1 told twice")
		}
		c.ForgetWebhook("w1")
		if _, ok := c.Loop("w1", "p", rule, at(2)); !ok {
			t.Fatal("a forgotten webhook's state stayed")
		}
		c.Forget("p")
		if n, ok := c.Loop("w2", "p", rule, at(2)); ok || n != 0 {
			t.Fatalf("a forgotten program still counts %d crashes", n)
		}
	})
	t.Run("memory bounded", func(t *testing.T) {
		c := NewCrashLoops()
		for i := range 10 * maxLoopCrashes {
			c.Crash("p", at(float64(i)/100))
		}
		if n := len(c.crashes["p"]); n > maxLoopCrashes {
			t.Fatalf("%d crashes kept", n)
		}
		c.Crash("p", at(3*24*60))
		if n := len(c.crashes["p"]); n != 1 {
			t.Fatalf("%d crashes kept after a day's quiet", n)
		}
	})
}

func TestLoopRuleCheck(t *testing.T) {
	for _, r := range []LoopRule{{1, time.Hour}, {101, time.Hour}, {3, 30 * time.Second}, {3, 25 * time.Hour}} {
		if r.Check() == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	if err := DefaultLoopRule.Check(); err != nil {
		t.Errorf("default rule: %v", err)
	}
}

func TestFullness(t *testing.T) {
	f := NewFullness()
	const lim = 1000
	steps := []struct {
		used int64
		want bool
	}{
		{100, false}, {899, false}, {900, true}, {990, false}, {850, false}, {950, false}, {799, false}, {905, true}, {1000, false},
	}
	for i, s := range steps {
		if got := f.Reading("p", s.used, lim); got != s.want {
			t.Fatalf("step %d (%d of %d): %v, want %v", i, s.used, lim, got, s.want)
		}
	}
	if f.Reading("q", 5000, 0) {
		t.Fatal("an uncapped /state raised an alert")
	}
}

func TestParseKinds(t *testing.T) {
	all, err := ParseKinds(nil)
	if err != nil || len(all) != len(Kinds) {
		t.Fatalf("ParseKinds(nil) = %v, %v", all, err)
	}
	got, err := ParseKinds([]string{"crashed", " oom_killed", "crashed"})
	if err != nil || len(got) != 2 {
		t.Fatalf("ParseKinds = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"crash"}, {"ping"}, {""}} {
		if _, err := ParseKinds(bad); err == nil {
			t.Errorf("ParseKinds(%q) accepted", bad)
		}
	}
}
