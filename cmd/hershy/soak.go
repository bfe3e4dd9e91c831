package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/hershyorg/hershy/internal/bench"
)

// soakCmd runs the example programs through a Host of its own for a while
// and reports whether anything grew without bound (see RELIABILITY.md).
func (a *app) soakCmd() *cobra.Command {
	var (
		o   bench.SoakOptions
		out string
	)
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Run the examples for a while under load and report whether anything leaks",
		Long: `soak starts its own Host (hershy serve on a loopback port, in a temporary
data directory), deploys the example programs (trading-long among them) and
runs them for --duration while sending them messages, restarting them in
turn and proxying their WatcherAPIs steadily. Every --every it samples the
Host's memory, goroutines and open files, its database, the programs'
memory and their automatic restarts, and at the end judges each series:
after a warm-up it must level off. It prints a Markdown report, draws each
curve as an SVG with --charts, and exits non-zero when something kept
growing or a program restarted by itself. Run it from the repository (the
examples are read from --examples); it needs the container engine (run as
root, as serve does).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log = a.errOut
			rep, err := bench.Soak(cmd.Context(), o)
			if rep == nil {
				return err
			}
			if rep.Series == nil && err == nil {
				err = errors.New("soak: no sample was taken")
			}
			if werr := a.writeReport(out, rep.WriteMarkdown); werr != nil {
				return werr
			}
			if err == nil && !rep.OK() {
				err = errors.New("soak: something kept growing, or a program restarted by itself (see the report)")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Runtime, "runtime", "runsc", "the programs' runtime: runsc or runc")
	f.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the programs run under load")
	f.DurationVar(&o.Every, "every", 0, "time between samples (default duration/60, from 5s to 1m)")
	f.StringVar(&o.Examples, "examples", "examples", "the folder of the example programs")
	f.StringVar(&o.SharedCache, "go-shared-cache", "/var/cache/hershy-bench/go-shared", "the Host's shared build cache layer (kept between runs)")
	f.StringVar(&o.Charts, "charts", "", "draw each series' curve as an SVG in this folder (the report links them by name)")
	f.StringVar(&out, "out", "", "write the report to this file instead of standard output")
	f.StringVar(&o.WorkDir, "work-dir", "", "keep the Host's data directory and log in this folder (default: a temporary one, removed at the end)")
	return cmd
}
