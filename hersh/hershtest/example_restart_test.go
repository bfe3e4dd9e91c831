package hershtest_test

// Pattern: durable state across a restart. With Config.StateDir (the Host
// sets $HERSH_STATE_DIR to /state) context state is written to a file and
// read back by the next process. The test plays both processes: one
// watcher counts, stops, and a new one on the same directory carries on.

import (
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hershyorg/hershy/hersh"
	"github.com/hershyorg/hershy/hersh/hershtest"
)

var pings = hersh.NewKey[int]("pings")

// pinger counts "ping" messages; it also ticks every minute, to show that
// watches start afresh in a new process while context state carries over.
func pinger(c *hersh.Context) error {
	hersh.WatchTick(c, "minute", time.Minute)
	if m := c.Message(); m != nil && m.Content == "ping" {
		_, err := pings.Update(c, func(n int) (int, error) { return n + 1, nil })
		return err
	}
	return nil
}

func TestDurableStateAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := hersh.Config{StateDir: t.TempDir()}

		first := hershtest.Start(t, cfg, pinger)
		first.Send("ping")
		first.Send("ping")
		first.Advance(90 * time.Second)
		first.Stop() // the final write of the state file is done when Stop returns
		if _, err := os.Stat(filepath.Join(cfg.StateDir, hersh.DefaultStateFileName)); err != nil {
			t.Fatalf("no state file after stop: %v", err)
		}

		// A new process: a new watcher on the same state directory.
		second := hershtest.Start(t, cfg, pinger)
		if n, _ := pings.Get(second.W); n != 2 {
			t.Fatalf("restored pings = %d, want 2", n)
		}
		second.Send("ping")
		if n, _ := pings.Get(second.W); n != 3 {
			t.Errorf("pings = %d, want 3", n)
		}
		// Watches start afresh: the new watcher's tick counts from its own start.
		second.Advance(time.Minute)
		if tick, _ := hershtest.Var[hersh.Tick](second, "minute"); tick.Count != 1 {
			t.Errorf("tick count %d, want 1", tick.Count)
		}
		// Left running: the kit stops it when the test ends.
	})
}
