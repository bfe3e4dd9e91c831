package hosttest

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/hershyorg/hershy/internal/driver/fake"
)

// The fake engine's stand-ins for the test programs' binaries (testdata/):
// each does what the tests observe of its program — its log lines, its
// WatcherAPI, what it keeps in /state, how it exits — through the fake
// container's Process, with no compiler and no engine.

// fakePrograms are the Programs a marker line can name.
var fakePrograms = map[string]fake.Program{
	"counter": Counter,
	"seed":    Seed,
}

// apiAddr is where a program serves its WatcherAPI: $HERSH_API_ADDR, which
// the Host sets, as the framework reads it (":8080" without it).
func apiAddr(p *fake.Process) string {
	if a := p.Getenv("HERSH_API_ADDR"); a != "" {
		return a
	}
	return ":8080"
}

// stdLog writes to the program's standard error with the standard
// library's default prefix, as the programs' log.Printf does.
func stdLog(p *fake.Process) *log.Logger { return log.New(p.Stderr(), "", log.LstdFlags) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// counterStatePath is where the framework keeps context state (its
// HERSH_STATE_DIR is /state).
const counterStatePath = "/state/hersh-context.json"

// counterState is the framework's state file, holding the key "count".
type counterState struct {
	Version int                        `json:"version"`
	SavedAt time.Time                  `json:"savedAt"`
	Values  map[string]json.RawMessage `json:"values"`
}

// Counter stands for testdata/counter. At each start it logs "counter
// starts at N", N the count its /state holds, then counts one for the
// start and one a second, saving the count to /state as the framework
// does. Its WatcherAPI is ready at once, answers /watcher/status and
// /watcher/varState (the count), and takes messages (each counts one);
// "crash" is answered, then the program exits with code 3 200 ms later.
// SIGTERM ends it with code 0.
var Counter fake.Program = runCounter

func runCounter(ctx context.Context, p *fake.Process) int {
	logger := stdLog(p)
	var mu sync.Mutex
	count := 0
	if b, err := p.ReadFile(counterStatePath); err == nil {
		var st counterState
		if err := json.Unmarshal(b, &st); err == nil {
			json.Unmarshal(st.Values["count"], &count)
		}
	}
	logger.Printf("counter starts at %d", count)
	bump := func() {
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		b, _ := json.Marshal(counterState{Version: 1, SavedAt: time.Now().UTC(), Values: map[string]json.RawMessage{"count": json.RawMessage(fmt.Sprint(n))}})
		if err := p.WriteFile(counterStatePath, b, 0o600); err != nil {
			logger.Printf("saving state: %v", err)
		}
	}

	msgs := make(chan string)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /watcher/ready", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /watcher/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"state": "Ready", "isRunning": true})
	})
	mux.HandleFunc("GET /watcher/varState", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := count
		mu.Unlock()
		writeJSON(w, map[string]any{"variables": map[string]int{"count": n}})
	})
	mux.HandleFunc("POST /watcher/message", func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Content string }
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case msgs <- m.Content:
			writeJSON(w, map[string]string{"status": "message sent"})
		case <-ctx.Done():
			http.Error(w, "stopping", http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
	})
	if err := p.Serve(apiAddr(p), mux); err != nil {
		logger.Print(err)
		return 1
	}
	bump() // the start's run

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var crash <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return 137
		case <-p.Term():
			return 0
		case <-tick.C:
			bump()
		case m := <-msgs:
			if m == "crash" && crash == nil {
				logger.Print("crashing on request")
				t := time.NewTimer(200 * time.Millisecond)
				defer t.Stop()
				crash = t.C
			}
			bump()
		case <-crash:
			return 3
		}
	}
}

// Seed stands for testdata/seed, a program written to the seed's
// WatcherAPI contract: /watcher/status and /watcher/message but no
// /watcher/ready. It logs every request it receives, with the
// Authorization and Cookie headers it was given, before answering it.
// SIGTERM ends it with code 0.
var Seed fake.Program = runSeed

func runSeed(ctx context.Context, p *fake.Process) int {
	logger := stdLog(p)
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /watcher/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"state": "Ready", "isRunning": true,
			"uptime": time.Since(started).String(), "lastUpdate": time.Now().UTC(),
		})
	})
	mux.HandleFunc("POST /watcher/message", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"status": "message sent"})
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("seen %s %s authorization=%q cookie=%q", r.Method, r.URL.RequestURI(),
			r.Header.Get("Authorization"), r.Header.Get("Cookie"))
		mux.ServeHTTP(w, r)
	})
	addr := apiAddr(p)
	if err := p.Serve(addr, logged); err != nil {
		logger.Print(err)
		return 1
	}
	logger.Printf("seed-style program listening on %s", addr)
	select {
	case <-ctx.Done():
		return 137
	case <-p.Term():
		return 0
	}
}
