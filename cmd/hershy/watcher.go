package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/spf13/cobra"
)

func (a *app) sendCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "send ID MESSAGE",
		Short: "Send a message to a program (its WatcherAPI /watcher/message)",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.SendMessage(cmd.Context(), args[0], args[1])
			if err != nil {
				return fmt.Errorf("send to %s: %w", args[0], err)
			}
			if a.jsonOut() {
				return a.printJSON(res)
			}
			status, _ := res["status"].(string)
			if status == "" {
				status = "message sent"
			}
			_, err = fmt.Fprintf(a.out, "%s: %s\n", args[0], status)
			return err
		},
	}
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status ID",
		Short: "Show a program's WatcherAPI summary",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := c.WatcherStatus(ctx, args[0])
			if err != nil {
				return fmt.Errorf("status of %s: %w", args[0], err)
			}
			sig, sigErr := c.WatcherSignals(ctx, args[0])
			if a.jsonOut() {
				out := map[string]any{"program_id": args[0], "status": st}
				if sigErr == nil {
					out["signals"] = sig
				}
				return a.printJSON(out)
			}
			fmt.Fprintf(a.out, "%-14s%s\n", "Program:", args[0])
			writeStatus(a.out, st)
			if sigErr == nil {
				fmt.Fprintf(a.out, "%-14s%d (var %d, user %d, watcher %d)\n", "Pending:",
					sig.TotalPending, sig.VarSigCount, sig.UserSigCount, sig.WatcherSigCount)
			}
			return nil
		},
	}
}

func writeStatus(w io.Writer, st *client.WatcherStatus) {
	fmt.Fprintf(w, "%-14s%s\n", "State:", orDash(st.State))
	fmt.Fprintf(w, "%-14s%t\n", "Running:", st.IsRunning)
	fmt.Fprintf(w, "%-14s%s\n", "Uptime:", scalar(st.Uptime))
	fmt.Fprintf(w, "%-14s%s\n", "Last update:", scalar(st.LastUpdate))
}

// scalar renders a JSON value compactly for a table cell.
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%.3f", x), ".000")
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

func (a *app) watchCmd() *cobra.Command {
	var interval time.Duration
	var count, lines int
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Live view of a program: state, variables, pending signals, last log lines (Ctrl-C ends)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t := time.NewTicker(interval)
			defer t.Stop()
			for i := 0; count <= 0 || i < count; i++ {
				if i > 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-t.C:
					}
				}
				if err := a.watchFrame(cmd, c, args[0], lines, i == 0); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many refreshes (0: until interrupted)")
	cmd.Flags().IntVar(&lines, "lines", 10, "log lines shown")
	return cmd
}

// watchFrame draws one refresh. Only the program lookup is fatal: the
// WatcherAPI parts are shown as unavailable while the program is not Ready.
func (a *app) watchFrame(cmd *cobra.Command, c *client.Client, id string, lines int, first bool) error {
	ctx := cmd.Context()
	p, err := c.GetProgram(ctx, id)
	if err != nil {
		return err
	}
	var b strings.Builder
	vars, varErr := c.WatcherVarState(ctx, id)
	sig, sigErr := c.WatcherSignals(ctx, id)
	logs, logErr := c.Logs(ctx, id, client.LogOptions{Tail: lines})
	if a.jsonOut() {
		frame := map[string]any{"program": p, "time": time.Now().UTC().Format(time.RFC3339)}
		if varErr == nil {
			frame["variables"] = vars.Variables
		}
		if sigErr == nil {
			frame["signals"] = sig
		}
		if logErr == nil {
			frame["logs"] = lastLines(logs.Logs, lines)
		}
		return a.printJSONLine(frame)
	}
	if !first {
		b.WriteString("\033[H\033[2J") // clear the terminal between frames
	}
	fmt.Fprintf(&b, "%s   state %s   restarts %d   %s\n", p.ProgramID, p.State, p.RestartCount, time.Now().Format("15:04:05"))
	if p.ErrorMsg != "" {
		fmt.Fprintf(&b, "error: %s\n", p.ErrorMsg)
	}
	b.WriteString("\nVARIABLES\n")
	if varErr != nil {
		fmt.Fprintf(&b, "  (unavailable: %v)\n", varErr)
	} else if len(vars.Variables) == 0 {
		b.WriteString("  (none)\n")
	} else {
		names := make([]string, 0, len(vars.Variables))
		for k := range vars.Variables {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(&b, "  %-24s %s\n", k, scalar(vars.Variables[k]))
		}
	}
	b.WriteString("\nSIGNALS\n")
	if sigErr != nil {
		fmt.Fprintf(&b, "  (unavailable: %v)\n", sigErr)
	} else {
		fmt.Fprintf(&b, "  pending %d (var %d, user %d, watcher %d)\n", sig.TotalPending, sig.VarSigCount, sig.UserSigCount, sig.WatcherSigCount)
		recent := sig.RecentSignals
		if len(recent) > 5 {
			recent = recent[len(recent)-5:]
		}
		for _, s := range recent {
			fmt.Fprintf(&b, "  %-8s %-24s %s\n", s.Type, s.CreatedAt, scalar(s.Content))
		}
	}
	b.WriteString("\nLOGS\n")
	if logErr != nil {
		fmt.Fprintf(&b, "  (unavailable: %v)\n", logErr)
	} else {
		for _, l := range lastLines(logs.Logs, lines) {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	_, err = io.WriteString(a.out, b.String())
	return err
}
