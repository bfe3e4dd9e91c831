package api

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Starting is what the Host's address answers while `hershy serve` waits
// for the container engine, before the Host opens: a Host whose engine is
// down at boot stays up and says why, rather than exit (and be restarted in
// a loop by its service manager), and opens once the engine answers.
//
// GET /healthz answers 503 with the health body (status "starting", the
// engine down since the wait began, the runtime unknown), GET /metrics
// says hershy_engine_up 0, and every other request gets 503 with a
// message saying what the Host waits for.
type Starting struct {
	runtime string
	since   time.Time

	mu            sync.Mutex
	checked       time.Time
	engineAnswers bool // the last check reached the engine; the runtime was missing
}

// NewStarting makes the handler for a Host of the given programs' runtime
// that began waiting at since.
func NewStarting(runtime string, since time.Time) *Starting {
	return &Starting{runtime: runtime, since: since, checked: since}
}

// Checked records a check that failed at: the engine did not answer, or
// (runtimeMissing) it answered without the programs' runtime.
func (s *Starting) Checked(at time.Time, runtimeMissing bool) {
	s.mu.Lock()
	s.checked, s.engineAnswers = at, runtimeMissing
	s.mu.Unlock()
}

// The health gauges' help, the same while starting as once open
// (metrics.go).
const (
	engineUpHelp  = "1 when the container engine answered the Host's last check."
	runtimeUpHelp = "1 when the programs' runtime could run containers at the Host's last check."
)

const startingProblem = "the container engine does not answer: the Host opens, and starts supervising programs, once it does"

func (s *Starting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checked, answers := s.checked, s.engineAnswers
	s.mu.Unlock()
	engine := healthOfThing{Name: "engine", Problem: startingProblem, Since: s.since}
	runtime := healthOfThing{Name: s.runtime, Problem: "unknown while the engine does not answer", Since: s.since}
	problem := startingProblem
	if answers {
		engine = healthOfThing{Name: "engine", OK: true, Since: checked}
		runtime.Problem = "the runtime " + s.runtime + " cannot run containers: the Host opens, and starts supervising programs, once it can"
		problem = runtime.Problem
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/healthz":
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Status: "starting", CheckedAt: checked, Engine: engine, Runtime: runtime})
	case r.Method == http.MethodGet && r.URL.Path == "/metrics":
		up := 0
		if answers {
			up = 1
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP hershy_engine_up %s\n# TYPE hershy_engine_up gauge\nhershy_engine_up %d\n", engineUpHelp, up)
		fmt.Fprintf(w, "# HELP hershy_runtime_up %s\n# TYPE hershy_runtime_up gauge\nhershy_runtime_up{runtime=%q} 0\n", runtimeUpHelp, s.runtime)
	default:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the Host is starting: "+problem)
	}
}
