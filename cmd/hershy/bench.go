package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hershyorg/hershy/internal/bench"
)

// benchCmd measures the Host against running the same programs by hand on
// the same engine, and writes the report (see BENCHMARKS.md).
func (a *app) benchCmd() *cobra.Command {
	var (
		o        bench.Options
		runtimes string
		smoke    bool
		out      string
		memory   int64
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the Host against doing the same by hand, and write the report",
		Long: `bench starts its own Hosts (hershy serve on loopback ports, in a temporary
data directory), runs programs through them and, in the same run, the same
image by hand on the same engine, and prints a Markdown report of every
figure with its baseline and the ratio. It needs the container engine (run
as root, as serve does). Nothing fails on a timing: a missed target is
marked in the report.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Runtimes = strings.Split(runtimes, ",")
			o.ProgramMemory = memory
			if smoke {
				o = bench.Smoke(o)
			}
			o.Log = a.errOut
			rep, err := bench.Run(cmd.Context(), o)
			if rep == nil {
				return err
			}
			// A run that failed part way still reports what it measured.
			if werr := a.writeReport(out, rep.WriteMarkdown); werr != nil {
				return werr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&runtimes, "runtime", "runsc,runc", "runtimes to measure under, comma-separated")
	f.IntVar(&o.Rounds, "rounds", 10, "repetitions of each repeated figure")
	f.IntVar(&o.Programs, "programs", 100, "programs of the scale figures")
	f.Var((*byteSize)(&memory), "program-memory", "memory limit of each scale program (default 64MiB)")
	f.StringVar(&o.SharedCache, "go-shared-cache", "/var/cache/hershy-bench/go-shared", "the Hosts' shared build cache layer (kept between runs, so no run compiles the standard library cold)")
	f.BoolVar(&smoke, "smoke", false, "one round over 3 programs: checks that every figure can be measured")
	f.StringVar(&out, "out", "", "write the report to this file instead of standard output")
	f.StringVar(&o.WorkDir, "work-dir", "", "keep the Hosts' data directories and logs in this folder (default: a temporary one, removed at the end)")
	return cmd
}

// writeReport writes a Markdown report, headed by the command that made
// it, to the file out (saying so) or, with out empty, to standard output.
func (a *app) writeReport(out string, write func(w io.Writer, command string) error) error {
	w := a.out
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := write(w, "hershy "+strings.Join(os.Args[1:], " ")); err != nil {
		return err
	}
	if out != "" {
		fmt.Fprintf(a.errOut, "report written to %s\n", out)
	}
	return nil
}
