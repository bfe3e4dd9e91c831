// A test program for the Host: ticks, keeps a counter in durable state,
// and exits with code 3 on the message "crash".
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hershyorg/hershy/hersh"
)

var count = hersh.NewKey[int]("count")

func main() {
	w, err := hersh.New(hersh.Config{}, func(c *hersh.Context) error {
		hersh.WatchTick(c, "tick", time.Second)
		if c.Trigger().Kind == hersh.TriggerStart {
			n, _ := count.Get(c)
			log.Printf("counter starts at %d", n)
		}
		if m := c.Message(); m != nil && m.Content == "crash" {
			// Exit a moment later, so the WatcherAPI's answer to the message
			// that asked for it gets out first.
			log.Print("crashing on request")
			time.AfterFunc(200*time.Millisecond, func() { os.Exit(3) })
		}
		_, err := count.Update(c, func(n int) (int, error) { return n + 1, nil })
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(hersh.ExitCode(w.Run(ctx)))
}

// On hosttest's fake engine, hosttest.Counter runs in place of this program.
//
//hosttest:program counter
