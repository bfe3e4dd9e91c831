// Command simple-counter is the smallest useful hersh program: a counter
// that advances every second, survives restarts, and answers two messages.
// Each tick adds $COUNTER_STEP to the counter (a positive integer, 1 when
// unset); any other value makes the program exit with an error at start.
//
//	status  logs the counter
//	reset   sets it back to 0
//
// The counter is kept in durable context state, so a restarted program
// resumes where it was. Every change is also appended to counter.log in the
// state directory ($HERSH_STATE_DIR, which the Hershy Host sets to /state;
// ./.data/simple-counter when run by hand).
//
// Run it with the WatcherAPI on 127.0.0.1:8080:
//
//	HERSH_API_ADDR=127.0.0.1:8080 go run .
//	curl -s -X POST -d '{"content":"status"}' http://127.0.0.1:8080/watcher/message
//
// or counting in tens: COUNTER_STEP=10 HERSH_API_ADDR=127.0.0.1:8080 go run .
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

// defaultStateDir is used when neither the config nor $HERSH_STATE_DIR names one.
const defaultStateDir = ".data/simple-counter"

// envStep names the environment variable holding the amount each tick adds.
const envStep = "COUNTER_STEP"

// counter is the durable context-state key holding the count.
var counter = hersh.NewKey[int]("counter")

func main() {
	var cfg hersh.Config // zero values: defaults, $HERSH_API_ADDR, $HERSH_STATE_DIR
	if os.Getenv(hersh.EnvStateDir) == "" {
		cfg.StateDir = defaultStateDir // run by hand: keep state next to the program
	}
	inc, err := parseStep(os.Getenv(envStep))
	if err != nil {
		log.Fatalf("simple-counter: %v", err)
	}
	w, err := newCounter(cfg, inc)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("simple-counter: WatcherAPI on %s, state in %s, step %d", w.Config().APIAddr, w.Config().StateDir, inc)

	// Ctrl-C or SIGTERM stops the watcher gracefully; the exit code tells
	// a supervisor how it ended.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := hersh.ExitCode(w.Run(ctx))
	stop()
	os.Exit(code)
}

// parseStep reads the value of $COUNTER_STEP: empty means 1, anything else
// must be a positive integer.
func parseStep(v string) (int, error) {
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", envStep, v)
	}
	return n, nil
}

// newCounter returns a watcher running the counter, adding inc on every
// tick. Its context state and counter.log live in the watcher's state
// directory.
func newCounter(cfg hersh.Config, inc int) (*hersh.Watcher, error) {
	if inc < 1 {
		return nil, fmt.Errorf("counter step %d: want a positive integer", inc)
	}
	var logPath string
	w, err := hersh.New(cfg, func(c *hersh.Context) error {
		return step(c, logPath, inc)
	})
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
	logPath = filepath.Join(dir, "counter.log")
	return w, nil
}

// step is the managed function: hersh runs it once at start, once per
// second (the tick, which adds inc) and once per message.
func step(c *hersh.Context, logPath string, inc int) error {
	hersh.WatchTick(c, "tick", time.Second)

	switch c.Trigger().Kind {
	case hersh.TriggerStart:
		n, _ := counter.Get(c) // restored from the state directory, if any
		log.Printf("counter starts at %d", n)

	case hersh.TriggerVars: // the tick fired
		n, err := counter.Update(c, func(n int) (int, error) { return n + inc, nil })
		if err != nil {
			return err
		}
		return record(logPath, n)

	case hersh.TriggerMessage:
		switch msg := c.Message().Content; msg {
		case "status":
			n, _ := counter.Get(c)
			log.Printf("status: counter is %d", n)
		case "reset":
			if err := counter.Set(c, 0); err != nil {
				return err
			}
			return record(logPath, 0)
		default:
			log.Printf("unknown message %q (try status or reset)", msg)
		}
	}
	return nil
}

// record logs the counter and appends it to counter.log.
func record(logPath string, n int) error {
	log.Printf("counter: %d", n)
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %d\n", time.Now().UTC().Format(time.RFC3339), n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
