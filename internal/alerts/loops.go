package alerts

import (
	"fmt"
	"sort"
	"time"
)

// LoopRule is a webhook's idea of a crash loop: Crashes within Window.
type LoopRule struct {
	Crashes int
	Window  time.Duration
}

// Defaults and bounds of a crash-loop rule.
var (
	DefaultLoopRule = LoopRule{Crashes: 3, Window: 10 * time.Minute}
	maxLoopWindow   = 24 * time.Hour
)

const maxLoopCrashes = 100

// Check says what is wrong with a rule, if anything.
func (r LoopRule) Check() error {
	switch {
	case r.Crashes < 2 || r.Crashes > maxLoopCrashes:
		return fmt.Errorf("a crash loop is 2 to %d crashes, not %d", maxLoopCrashes, r.Crashes)
	case r.Window < time.Minute || r.Window > maxLoopWindow:
		return fmt.Errorf("a crash loop's window is 1 minute to 24 hours, not %s", r.Window)
	}
	return nil
}

// CrashLoops remembers each program's recent crashes and when each
// webhook last heard of a loop, to say when a crash completes a loop. A
// webhook hears of a program's loop at most once per its window: a
// program that keeps crashing raises a new crash_loop each window, not one
// per crash. Not safe for concurrent use.
type CrashLoops struct {
	crashes map[string][]time.Time // program -> crash times, oldest first
	fired   map[loopKey]time.Time  // last loop alert per webhook and program
	keep    time.Duration          // how long crashes are remembered
}

type loopKey struct{ webhook, program string }

// NewCrashLoops makes an empty tracker.
func NewCrashLoops() *CrashLoops {
	return &CrashLoops{crashes: map[string][]time.Time{}, fired: map[loopKey]time.Time{}, keep: maxLoopWindow}
}

// Crash records a crash of program at the time given.
func (c *CrashLoops) Crash(program string, at time.Time) {
	ts := append(c.crashes[program], at)
	// Crashes arrive in order per program; keep them sorted regardless.
	if n := len(ts); n > 1 && ts[n-1].Before(ts[n-2]) {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	cut := 0
	for cut < len(ts) && at.Sub(ts[cut]) > c.keep {
		cut++
	}
	if len(ts)-cut > maxLoopCrashes {
		cut = len(ts) - maxLoopCrashes
	}
	c.crashes[program] = ts[cut:]
}

// Loop reports whether program, whose latest crash was at the time given,
// is in a crash loop by webhook's rule and the webhook has not heard of
// it within the rule's window; if so it counts the webhook as told, and
// returns the crashes within the window.
func (c *CrashLoops) Loop(webhook, program string, rule LoopRule, at time.Time) (int, bool) {
	n := 0
	for _, t := range c.crashes[program] {
		if d := at.Sub(t); d >= 0 && d < rule.Window {
			n++
		}
	}
	if n < rule.Crashes {
		return n, false
	}
	k := loopKey{webhook, program}
	if last, ok := c.fired[k]; ok && at.Sub(last) < rule.Window {
		return n, false
	}
	c.fired[k] = at
	return n, true
}

// Forget drops what is known of a program (it was deleted).
func (c *CrashLoops) Forget(program string) {
	delete(c.crashes, program)
	for k := range c.fired {
		if k.program == program {
			delete(c.fired, k)
		}
	}
}

// ForgetWebhook drops what is known of a webhook (it was deleted).
func (c *CrashLoops) ForgetWebhook(webhook string) {
	for k := range c.fired {
		if k.webhook == webhook {
			delete(c.fired, k)
		}
	}
}

// Fullness says when a program's /state becomes nearly full: once when
// its use reaches FullAt of its cap, and again only after it has gone
// back under RearmAt (so a program hovering at the line does not raise an
// alert per reading). Not safe for concurrent use.
type Fullness struct {
	full map[string]bool // programs over FullAt, already told
}

// Thresholds of Fullness, as fractions of the cap.
const (
	FullAt  = 0.90
	RearmAt = 0.80
)

// NewFullness makes an empty tracker.
func NewFullness() *Fullness { return &Fullness{full: map[string]bool{}} }

// Reading takes one reading of program's /state and reports whether it
// raises an alert. A zero limit (no cap) never does.
func (f *Fullness) Reading(program string, used, limit int64) bool {
	if limit <= 0 {
		return false
	}
	frac := float64(used) / float64(limit)
	switch {
	case frac >= FullAt && !f.full[program]:
		f.full[program] = true
		return true
	case frac < RearmAt:
		delete(f.full, program)
	}
	return false
}

// Forget drops what is known of a program.
func (f *Fullness) Forget(program string) { delete(f.full, program) }
