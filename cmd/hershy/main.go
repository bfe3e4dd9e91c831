// Command hershy is the Hershy Host (hershy serve) and its command-line client.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hershyorg/hershy/internal/statearchive"
)

func main() {
	// The state helper, hidden: what a cluster's helper Pod runs of this
	// binary to copy a program's /state volume (internal/statearchive).
	if len(os.Args) > 1 && os.Args[1] == statearchive.HelperCommand {
		os.Exit(statearchive.RunHelper(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
