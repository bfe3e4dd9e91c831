package hershtest

import (
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// The goroutines of a bubble, read from the runtime's traceback, whose
// header names the bubble a goroutine belongs to ("goroutine 7 [select
// (durable), synctest bubble 3]:"). They let the kit say where a run is
// blocked and which goroutines outlive the watcher, instead of leaving the
// test to synctest's "deadlock: main bubble goroutine has exited but
// blocked goroutines remain". Where the traceback does not name bubbles,
// both checks find nothing and synctest's own remains.

type goroutineInfo struct {
	creator string // id of the goroutine that started it
	stack   string // its whole traceback
}

// goroutineSet maps goroutine ids to what is known of them.
type goroutineSet map[string]goroutineInfo

var (
	headerRE  = regexp.MustCompile(`^goroutine (\d+) \[([^\]]*)\]:`)
	bubbleRE  = regexp.MustCompile(`synctest bubble (\d+)`)
	creatorRE = regexp.MustCompile(`(?m)^created by .* in goroutine (\d+)$`)
)

// traceback returns the tracebacks of all goroutines, or only the caller's.
func traceback(all bool) string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, all)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// parseHeader returns a traceback block's goroutine id and bubble id ("" if
// it names none).
func parseHeader(block string) (id, bubble string) {
	m := headerRE.FindStringSubmatch(block)
	if m == nil {
		return "", ""
	}
	if b := bubbleRE.FindStringSubmatch(m[2]); b != nil {
		bubble = b[1]
	}
	return m[1], bubble
}

// currentGoroutine returns the caller's goroutine id and bubble id.
func currentGoroutine() (id, bubble string) {
	return parseHeader(traceback(false))
}

// bubbleGoroutines returns the goroutines of the caller's bubble other than
// the caller itself.
func bubbleGoroutines() goroutineSet {
	self, bubble := currentGoroutine()
	out := goroutineSet{}
	if bubble == "" {
		return out
	}
	for _, block := range strings.Split(traceback(true), "\n\n") {
		id, b := parseHeader(block)
		if b != bubble || id == self {
			continue
		}
		info := goroutineInfo{stack: block}
		if m := creatorRE.FindStringSubmatch(block); m != nil {
			info.creator = m[1]
		}
		out[id] = info
	}
	return out
}

// bubbleWatchers is what the leak check knows of one bubble: the
// goroutines alive before the kit's first watcher there started, the
// goroutines that started watchers (the test's own), and how many of the
// kit's watchers have yet to be cleaned up. The check runs once, when the
// last of them ends: until then a goroutine of another watcher still
// running is no leak.
type bubbleWatchers struct {
	id       string
	baseline goroutineSet
	starters map[string]bool
	open     int
}

var bubbles = struct {
	sync.Mutex
	m map[string]*bubbleWatchers
}{m: map[string]*bubbleWatchers{}}

// joinBubble records a watcher about to start in the caller's bubble.
func joinBubble() *bubbleWatchers {
	self, id := currentGoroutine()
	if id == "" { // the traceback names no bubbles: no leak check
		return &bubbleWatchers{open: 1}
	}
	baseline := bubbleGoroutines()
	bubbles.Lock()
	defer bubbles.Unlock()
	b := bubbles.m[id]
	if b == nil {
		b = &bubbleWatchers{id: id, baseline: baseline, starters: map[string]bool{}}
		bubbles.m[id] = b
	}
	b.starters[self] = true
	b.open++
	return b
}

// leave records that a watcher has been cleaned up, and reports whether it
// was the last one of its bubble.
func (b *bubbleWatchers) leave() bool {
	bubbles.Lock()
	defer bubbles.Unlock()
	b.open--
	if b.open > 0 {
		return false
	}
	if b.id != "" {
		delete(bubbles.m, b.id)
	}
	return true
}

// leaked returns the tracebacks of the goroutines of the bubble that were
// started after the kit's first watcher there, not by a goroutine that
// started a watcher (the test's own), and are still alive. Call it once the
// watchers have ended and the bubble has settled. Goroutines the test
// started itself are left to the test (and to synctest, which fails a test
// whose goroutines outlive it).
func (b *bubbleWatchers) leaked() []string {
	if b.id == "" {
		return nil
	}
	var out []string
	for id, g := range bubbleGoroutines() {
		if _, old := b.baseline[id]; old || b.starters[g.creator] {
			continue
		}
		out = append(out, g.stack)
	}
	sort.Strings(out)
	return out
}

// blockedRun returns the traceback of the engine goroutine, which runs the
// managed function, for failure messages about a run in progress. It is
// found by the exported method that starts it (or the function that calls
// user code, should that move).
func blockedRun() string {
	var runs []string
	for _, g := range bubbleGoroutines() {
		if strings.Contains(g.stack, "created by github.com/hershyorg/hershy/hersh.(*Watcher).Start ") ||
			strings.Contains(g.stack, "github.com/hershyorg/hershy/hersh.callManaged(") {
			runs = append(runs, g.stack)
		}
	}
	if len(runs) == 0 {
		return ""
	}
	sort.Strings(runs)
	return "the run in progress is blocked here:\n" + strings.Join(runs, "\n\n")
}
