package bench

import (
	"fmt"

	"github.com/hershyorg/hershy/internal/builder"
)

// The program every figure runs: the smallest hersh watcher, which ticks
// once a minute and answers its WatcherAPI. version changes its source and
// its compiled code (it is logged at start), so a new version is compiled
// and linked again, never taken whole from a build cache.
func programSource(version int) map[string]string {
	return map[string]string{
		"go.mod": "module example.com/benchprogram\n\ngo 1.25\n\nrequire " + builder.FrameworkModule + " v0.0.0\n",
		"main.go": fmt.Sprintf(`// Command benchprogram is the program hershy bench runs.
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

const version = %d

func main() {
	w, err := hersh.New(hersh.Config{}, func(c *hersh.Context) error {
		hersh.WatchTick(c, "tick", time.Minute)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("benchprogram version %%d", version)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(hersh.ExitCode(w.Run(ctx)))
}
`, version),
	}
}
