// Command watcher-server uses every feature of hersh, so that every route
// of the WatcherAPI has something to show:
//
//	WatchCall  "sensor"      a simulated thermostat, polled every 2 s
//	WatchFlow  "events"      values from a generator goroutine; heartbeats
//	                         are stored but marked skip-signal (no run)
//	WatchTick  "tick"        every second: advances the counter
//	Memo       "thresholds"  a lookup table computed once per session
//	context    "counter"     durable: resumes after a restart
//	messages   status, reset, help (anything else gets a reply in the log)
//	OnCleanup  logs why the session ended and saves the counter
//
// The counter is also kept in counter.txt in the state directory
// ($HERSH_STATE_DIR, which the Hershy Host sets to /state;
// ./.data/watcher-server when run by hand), rewritten atomically.
//
// Run it with the WatcherAPI on 127.0.0.1:8080:
//
//	HERSH_API_ADDR=127.0.0.1:8080 go run .
//	curl -s http://127.0.0.1:8080/watcher/varState
//	curl -s -X POST -d '{"content":"status"}' http://127.0.0.1:8080/watcher/message
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

// defaultStateDir is used when neither the config nor $HERSH_STATE_DIR names one.
const defaultStateDir = ".data/watcher-server"

// counter is the durable context-state key holding the count.
var counter = hersh.NewKey[int]("counter")

// Reading is the value of the simulated sensor.
type Reading struct {
	Seq     int     `json:"seq"`
	Celsius float64 `json:"celsius"`
	Heating bool    `json:"heating"`
}

// Event is a value of the generator's flow.
type Event struct {
	Seq  int    `json:"seq"`
	Kind string `json:"kind"` // "job" (causes a run) or "heartbeat" (does not)
}

// Thresholds is the memoized lookup table the sensor readings are judged by.
type Thresholds struct {
	Low    float64           `json:"low"`
	High   float64           `json:"high"`
	Labels map[string]string `json:"labels"`
}

func main() {
	var cfg hersh.Config // zero values: defaults, $HERSH_API_ADDR, $HERSH_STATE_DIR
	if os.Getenv(hersh.EnvStateDir) == "" {
		cfg.StateDir = defaultStateDir // run by hand: keep state next to the program
	}
	w, err := newServer(cfg)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("watcher-server: WatcherAPI on %s, state in %s", w.Config().APIAddr, w.Config().StateDir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := hersh.ExitCode(w.Run(ctx))
	stop()
	os.Exit(code)
}

// server holds what the managed function needs besides its Context.
type server struct {
	file    string                      // counter.txt
	events  chan hersh.FlowValue[Event] // this session's generator output
	stopGen context.CancelFunc          // ends this session's generator
}

// newServer returns a watcher running the server, with its cleanup set.
func newServer(cfg hersh.Config) (*hersh.Watcher, error) {
	s := &server{}
	w, err := hersh.New(cfg, s.step)
	if err != nil {
		return nil, err
	}
	dir := w.Config().StateDir
	if dir == "" {
		dir = defaultStateDir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s.file = filepath.Join(dir, "counter.txt")
	w.OnCleanup(s.cleanup)
	return w, nil
}

// step is the managed function: hersh runs it at start, once per message,
// and whenever the sensor, the events or the tick change.
func (s *server) step(c *hersh.Context) error {
	if c.Trigger().Kind == hersh.TriggerStart {
		// Watches start afresh with every session: so does the generator.
		ctx, cancel := context.WithCancel(context.Background())
		s.events, s.stopGen = make(chan hersh.FlowValue[Event]), cancel
		go generate(ctx, s.events)
	}

	// Hooks: declared on every run, by name, like React hooks.
	th, err := hersh.Memo(c, "thresholds", func() (Thresholds, error) {
		log.Printf("computing thresholds (once per session)")
		return Thresholds{Low: 18, High: 24, Labels: map[string]string{
			"cold": "heater on", "ok": "in range", "hot": "heater off"}}, nil
	})
	if err != nil {
		return err
	}
	sensor, haveSensor := hersh.WatchCall(c, "sensor", 2*time.Second, readSensor)
	event, haveEvent := hersh.WatchFlowValues(c, "events", s.events)
	hersh.WatchTick(c, "tick", time.Second)

	switch c.Trigger().Kind {
	case hersh.TriggerStart:
		n, _ := counter.Get(c) // restored from the state directory, if any
		log.Printf("counter starts at %d", n)
		return s.save(n)

	case hersh.TriggerVars:
		if c.Changed("sensor") && haveSensor {
			label := th.classify(sensor.Celsius)
			log.Printf("sensor #%d: %.1f°C, %s (%s)", sensor.Seq, sensor.Celsius, label, th.Labels[label])
		}
		if c.Changed("events") && haveEvent {
			log.Printf("event #%d: %s", event.Seq, event.Kind)
		}
		if c.Changed("tick") {
			n, err := counter.Update(c, func(n int) (int, error) { return n + 1, nil })
			if err != nil {
				return err
			}
			return s.save(n)
		}

	case hersh.TriggerMessage:
		switch msg := c.Message().Content; msg {
		case "status":
			n, _ := counter.Get(c)
			log.Printf("status: counter is %d, sensor %+v, last event %+v", n, sensor, event)
		case "reset":
			if err := counter.Set(c, 0); err != nil {
				return err
			}
			log.Printf("reset: counter is 0")
			return s.save(0)
		case "help":
			log.Printf("help: messages are status, reset and help")
		default:
			log.Printf("unknown message %q (try help)", msg)
		}
	}
	return nil
}

// cleanup runs once when a session ends: it stops the generator and saves
// the counter one last time. Context state can still be read here.
func (s *server) cleanup(c *hersh.Context, cause error) {
	if s.stopGen != nil {
		s.stopGen()
	}
	n, _ := counter.Get(c)
	log.Printf("cleanup: session ended (cause: %v), counter %d saved", cause, n)
	if err := s.save(n); err != nil {
		log.Printf("cleanup: %v", err)
	}
}

// readSensor is the WatchCall poll: a thermostat whose next reading depends
// on the previous one (it heats up to High, then cools down to Low).
func readSensor(_ context.Context, prev Reading) (Reading, bool, error) {
	next := prev
	next.Seq++
	switch {
	case prev.Seq == 0:
		next.Celsius, next.Heating = 21, true
	case prev.Heating:
		next.Celsius += 1.5
	default:
		next.Celsius -= 1
	}
	if next.Celsius >= 24 {
		next.Heating = false
	} else if next.Celsius <= 18 {
		next.Heating = true
	}
	return next, true, nil
}

// generate sends an event every 1.5 s until ctx ends. Every other one is a
// heartbeat: stored (the WatcherAPI shows it) but skip-signal.
func generate(ctx context.Context, out chan<- hersh.FlowValue[Event]) {
	t := time.NewTicker(1500 * time.Millisecond)
	defer t.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e := hersh.FlowValue[Event]{Value: Event{Seq: seq, Kind: "job"}}
		if seq%2 == 0 {
			e.Value.Kind, e.SkipSignal = "heartbeat", true
		}
		select {
		case out <- e:
		case <-ctx.Done():
			return
		}
	}
}

// classify names a temperature with the thresholds' labels.
func (th Thresholds) classify(celsius float64) string {
	switch {
	case celsius < th.Low:
		return "cold"
	case celsius > th.High:
		return "hot"
	}
	return "ok"
}

// save rewrites counter.txt atomically: a temporary file, then a rename.
func (s *server) save(n int) error {
	tmp := s.file + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", n), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.file)
}
