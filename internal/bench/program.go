package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/hershyorg/hershy/internal/builder"
)

// The program every figure runs: the smallest hersh watcher, which ticks
// once a minute and answers its WatcherAPI. version changes its source and
// its compiled code (it is logged at start), so a new version is compiled
// and linked again, never taken whole from a build cache.
// runNonce makes this run's sources its own: a build id is the digest of
// owner and source, so without it a run would reuse the images an earlier
// run that was killed left on the engine, and time no build.
var runNonce = func() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

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

// run names the hershy bench run that built this program.
const run = %q

func main() {
	w, err := hersh.New(hersh.Config{}, func(c *hersh.Context) error {
		hersh.WatchTick(c, "tick", time.Minute)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("benchprogram version %%d (run %%s)", version, run)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(hersh.ExitCode(w.Run(ctx)))
}
`, version, runNonce),
	}
}
