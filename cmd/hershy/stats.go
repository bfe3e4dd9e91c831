package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hershyorg/hershy/internal/client"
)

// statsCmd prints a program's resource history (GET /programs/{id}/stats):
// the dashboard's charts, as a table a terminal or a script can read.
func (a *app) statsCmd() *cobra.Command {
	var opts client.StatsOptions
	var last int
	cmd := &cobra.Command{
		Use:   "stats ID",
		Short: "Show a program's resource history: CPU, memory, pids, /state, restarts",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if last < 0 {
				return usageError{fmt.Errorf("--last must not be negative")}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.Stats(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			if last > 0 && len(st.Samples) > last {
				st.Samples = st.Samples[len(st.Samples)-last:]
			}
			if a.jsonOut() {
				return a.printJSON(st)
			}
			rows := make([][]string, 0, len(st.Samples))
			for _, s := range st.Samples {
				rows = append(rows, []string{
					s.At.Local().Format(time.DateTime),
					strconv.FormatFloat(s.CPUPercent, 'f', 1, 64),
					ofLimit(s.MemoryBytes, s.MemoryLimitBytes),
					strconv.FormatInt(s.Pids, 10),
					ofLimit(s.StateBytesUsed, s.StateBytesLimit),
					strconv.Itoa(s.Restarts),
				})
			}
			if len(rows) == 0 {
				_, err := fmt.Fprintf(a.out, "No samples (%s resolution): the program has not run in that time.\n", orDash(st.Resolution))
				return err
			}
			return table(a.out, []string{"TIME", "CPU %", "MEMORY", "PIDS", "/STATE", "RESTARTS"}, rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Since, "since", "", `from this time (RFC 3339) or this long ago ("1h"); default: the Host's (the last hour)`)
	f.StringVar(&opts.Resolution, "resolution", "", "fine (every 10 s, an hour kept) or coarse (every minute, a day kept); default: chosen from --since")
	f.IntVar(&last, "last", 0, "only the last N samples")
	return cmd
}

// ofLimit writes "12.0 MiB / 256 MiB" (or the use alone without a limit).
func ofLimit(used, limit int64) string {
	if limit <= 0 {
		return mebibytes(used)
	}
	return mebibytes(used) + " / " + mebibytes(limit)
}

func mebibytes(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
