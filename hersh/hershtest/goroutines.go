package hershtest

import (
	"regexp"
	"runtime"
	"sort"
	"strings"
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

// leaked returns the tracebacks of the goroutines of the bubble that were
// started after the watcher was first started, not by the test's own
// goroutine, and are still alive. Call it once the watcher has ended and
// the bubble has settled. Goroutines the test started itself are left to
// the test (and to synctest, which fails a test whose goroutines outlive it).
func (h *Watcher) leaked() []string {
	var out []string
	for id, g := range bubbleGoroutines() {
		if _, old := h.baseline[id]; old || g.creator == h.starter {
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
