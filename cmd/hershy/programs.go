package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/spf13/cobra"
)

func (a *app) psCmd() *cobra.Command {
	var opts client.ListOptions
	cmd := &cobra.Command{
		Use:     "ps",
		Aliases: []string{"ls", "list"},
		Short:   "List programs",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			list, err := c.ListPrograms(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(list)
			}
			now := time.Now()
			rows := make([][]string, 0, len(list.Programs))
			for _, p := range list.Programs {
				rows = append(rows, []string{p.ProgramID, orDash(p.UserID), p.State, orDash(p.Runtime),
					strconv.Itoa(p.RestartCount), age(p.Created(), now)})
			}
			return table(a.out, []string{"ID", "USER", "STATE", "RUNTIME", "RESTARTS", "AGE"}, rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.State, "state", "", "only programs in this state")
	f.StringVar(&opts.UserID, "user", "", "only programs of this user (admin)")
	f.IntVar(&opts.Limit, "limit", 0, "at most this many programs")
	f.IntVar(&opts.Offset, "offset", 0, "skip this many programs")
	return cmd
}

func (a *app) inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect ID",
		Short: "Show one program in detail",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.GetProgram(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(p)
			}
			return a.printProgram(p)
		},
	}
}

func (a *app) printProgram(p *client.Program) error {
	rows := [][]string{
		{"ID:", p.ProgramID},
		{"User:", orDash(p.UserID)},
		{"State:", p.State},
		{"Build:", orDash(p.BuildID)},
		{"Runtime:", orDash(p.Runtime)},
		{"Image:", orDash(p.ImageID)},
		{"Container:", orDash(p.ContainerID)},
		{"Proxy URL:", orDash(p.ProxyURL)},
		{"Restart policy:", orDash(strings.Trim(string(p.RestartPolicy), `"`))},
		{"Restarts:", strconv.Itoa(p.RestartCount)},
	}
	if p.NextRestartAt != nil && *p.NextRestartAt != "" {
		rows = append(rows, []string{"Next restart:", *p.NextRestartAt})
	}
	if p.LastExitCode != nil {
		rows = append(rows, []string{"Last exit code:", strconv.Itoa(*p.LastExitCode)})
	}
	if w := p.WatcherAPI; w != nil {
		if w.Answering {
			rows = append(rows, []string{"WatcherAPI:", "answering (since " + w.Since + ")"})
		} else {
			rows = append(rows, []string{"WatcherAPI:", "NOT answering since " + w.Since + ": " + orDash(w.Problem)})
		}
	}
	rows = append(rows, []string{"Created:", orDash(p.CreatedAt)}, []string{"Updated:", orDash(p.UpdatedAt)})
	if p.ErrorMsg != "" {
		rows = append(rows, []string{"Error:", p.ErrorMsg})
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(a.out, "%-16s%s\n", r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) actionCmd(verb, short string) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var res *client.ActionResponse
			switch verb {
			case "start":
				res, err = c.Start(cmd.Context(), args[0])
			case "stop":
				res, err = c.Stop(cmd.Context(), args[0])
			default:
				res, err = c.Restart(cmd.Context(), args[0])
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", verb, args[0], err)
			}
			if !wait {
				return a.printAction(verb, res)
			}
			if !a.jsonOut() {
				if err := a.printAction(verb, res); err != nil {
					return err
				}
			}
			want := "Ready"
			if verb == "stop" {
				want = "Stopped"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			p, err := waitForState(ctx, c, res.ProgramID, want, res.Seq)
			if err != nil {
				return fmt.Errorf("%s %s: %w", verb, args[0], err)
			}
			if a.jsonOut() {
				return a.printJSON(p)
			}
			_, err = fmt.Fprintf(a.out, "%s: %s\n", p.ProgramID, p.State)
			return err
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the program is "+map[bool]string{true: "Stopped", false: "Ready"}[verb == "stop"]+" (--wait=false returns at once)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// printAction prints the Host's answer to start, stop or restart.
func (a *app) printAction(verb string, res *client.ActionResponse) error {
	if a.jsonOut() {
		return a.printJSON(res)
	}
	msg := res.Message
	if msg == "" {
		msg = verb + " requested"
	}
	_, err := fmt.Fprintf(a.out, "%s: %s (state %s)\n", res.ProgramID, msg, res.State)
	return err
}

// waitForState follows the program's events until a view at least as new
// as the action (seq minSeq) is in want. Error, or Stopped when Ready is
// wanted (a restart passes from Stopping straight to Starting), ends the
// wait with an error.
func waitForState(ctx context.Context, c *client.Client, id, want string, minSeq uint64) (*client.Program, error) {
	p, err := awaitProgram(ctx, c, id, minSeq, func(p *client.Program) bool {
		return p.State == want || p.State == "Error" || p.State == "Stopped" && want == "Ready"
	})
	switch {
	case err != nil:
		return p, err
	case p.State == want:
		return p, nil
	case p.State == "Error":
		return p, fmt.Errorf("program is in Error: %s", p.ErrorMsg)
	default:
		return p, fmt.Errorf("program stopped instead of becoming Ready")
	}
}

// awaitProgram follows program id's events (GET /events) until settled
// accepts a view whose seq is at least minSeq; older views (the state
// before the action the caller made) are skipped. A stream that ends or
// overflows is opened again: its snapshot carries the current view.
func awaitProgram(ctx context.Context, c *client.Client, id string, minSeq uint64, settled func(*client.Program) bool) (*client.Program, error) {
	var last *client.Program
	for {
		es, err := c.Events(ctx, client.EventOptions{ProgramID: id})
		if err != nil {
			return last, err
		}
		for {
			ev, err := es.Next()
			if err != nil {
				break // the stream ended: open it again
			}
			switch ev.Kind {
			case "deleted":
				es.Close()
				return last, fmt.Errorf("program %s was deleted", id)
			case "program":
				if ev.Program.ProgramID != id || ev.Program.Seq < minSeq {
					continue
				}
				last = ev.Program
				if settled(ev.Program) {
					es.Close()
					return ev.Program, nil
				}
			}
		}
		es.Close()
		select {
		case <-ctx.Done():
			if last != nil {
				return last, fmt.Errorf("still %s: %w", last.State, ctx.Err())
			}
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *app) rmCmd() *cobra.Command {
	var keepState bool
	cmd := &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"delete"},
		Short:   "Stop and delete a program",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			del := c.DeleteProgram
			if keepState {
				del = c.DeleteProgramKeepState
			}
			if err := del(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("rm %s: %w", args[0], err)
			}
			if a.jsonOut() {
				return a.printJSON(map[string]string{"program_id": args[0], "status": "deleted"})
			}
			_, err = fmt.Fprintf(a.out, "%s deleted\n", args[0])
			return err
		},
	}
	cmd.Flags().BoolVar(&keepState, "keep-state", false, "keep the program's /state volume (hersh-state-ID) on the cluster; a Host on --engine kubernetes only")
	return cmd
}

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	var opts client.LogOptions
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Show a program's container logs",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if follow {
				err := c.FollowLogs(cmd.Context(), args[0], opts, func(line string) error {
					if a.jsonOut() {
						return a.printJSONLine(map[string]string{"line": line})
					}
					_, err := fmt.Fprintln(a.out, line)
					return err
				})
				if cmd.Context().Err() != nil {
					return nil // Ctrl-C ends a follow normally
				}
				return err
			}
			l, err := c.Logs(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(l)
			}
			_, err = fmt.Fprint(a.out, l.Logs)
			if err == nil && l.Logs != "" && !strings.HasSuffix(l.Logs, "\n") {
				_, err = fmt.Fprintln(a.out)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "stream new log lines until interrupted")
	f.IntVar(&opts.Tail, "tail", 0, "only the last N lines")
	f.StringVar(&opts.Since, "since", "", "only lines since this time (RFC 3339) or duration (e.g. 10m)")
	return cmd
}
