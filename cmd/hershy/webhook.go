package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/spf13/cobra"
)

func (a *app) webhookCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Alerts of your programs' events, posted to a URL: crashed, crash_loop, oom_killed, build_failed, state_nearly_full",
		Long: `A webhook receives a signed JSON POST for each event of its programs.
The Hershy-Signature header is "t=UNIX,v1=HEX": HEX is the HMAC-SHA256, keyed
with the webhook's secret (shown once, by add), of UNIX, ".", and the body.
Failed deliveries are retried with back-off; "webhook deliveries" shows each
attempt. The Host refuses URLs on loopback, private networks and its own
addresses unless its operator allowed them (serve --webhook-allow).`,
	}
	var (
		program, events, loop string
	)
	add := &cobra.Command{
		Use:   "add URL",
		Short: "Register a webhook; prints its secret, which signs every delivery and is not shown again",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := client.WebhookRequest{URL: args[0], ProgramID: program}
			if events != "" {
				req.Events = strings.Split(events, ",")
			}
			if loop != "" {
				cl, err := parseCrashLoop(loop)
				if err != nil {
					return usageError{err}
				}
				req.CrashLoop = &cl
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			w, err := c.CreateWebhook(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("webhook add: %w", err)
			}
			if a.jsonOut() {
				return a.printJSON(w)
			}
			_, err = fmt.Fprintf(a.out, "webhook %s: %s\nevents: %s\nsecret: %s\n(keep the secret: it signs every delivery and is not shown again)\n",
				w.ID, w.URL, strings.Join(w.Events, ","), w.Secret)
			return err
		},
	}
	f := add.Flags()
	f.StringVar(&program, "program", "", "only this program's events (default: all your programs)")
	f.StringVar(&events, "events", "", "the events wanted, comma-separated (default: all)")
	f.StringVar(&loop, "crash-loop", "", "what counts as a crash loop: CRASHES/WINDOW, e.g. 5/15m (default 3/10m)")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List your webhooks",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ws, err := c.ListWebhooks(cmd.Context())
			if err != nil {
				return fmt.Errorf("webhook ls: %w", err)
			}
			if a.jsonOut() {
				return a.printJSON(ws)
			}
			now := time.Now()
			var rows [][]string
			for _, w := range ws {
				prog := w.ProgramID
				if prog == "" {
					prog = "(all)"
				}
				loop := fmt.Sprintf("%d/%s", w.CrashLoop.Crashes, time.Duration(w.CrashLoop.WindowSeconds*float64(time.Second)))
				rows = append(rows, []string{w.ID, w.URL, prog, strings.Join(w.Events, ","), loop, age(w.CreatedAt, now)})
			}
			return table(a.out, []string{"ID", "URL", "PROGRAM", "EVENTS", "CRASH LOOP", "AGE"}, rows)
		},
	}
	rm := &cobra.Command{
		Use:   "rm ID",
		Short: "Remove a webhook and its delivery log",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteWebhook(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("webhook rm %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(a.out, "%s removed\n", args[0])
			return err
		},
	}
	var limit int
	deliveries := &cobra.Command{
		Use:   "deliveries ID",
		Short: "Show a webhook's newest delivery attempts",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ds, err := c.Deliveries(cmd.Context(), args[0], limit)
			if err != nil {
				return fmt.Errorf("webhook deliveries %s: %w", args[0], err)
			}
			if a.jsonOut() {
				return a.printJSON(ds)
			}
			now := time.Now()
			var rows [][]string
			for _, d := range ds {
				status := ""
				if d.Status != 0 {
					status = strconv.Itoa(d.Status)
				}
				rows = append(rows, []string{age(d.At, now), d.Type, d.ProgramID, strconv.Itoa(d.Attempt), d.Outcome, status, d.Error})
			}
			return table(a.out, []string{"AGE", "EVENT", "PROGRAM", "TRY", "OUTCOME", "STATUS", "ERROR"}, rows)
		},
	}
	deliveries.Flags().IntVar(&limit, "limit", 0, "attempts shown, newest first (default 50, at most 200)")
	ping := &cobra.Command{
		Use:   "ping ID",
		Short: "Send a webhook a test event (see webhook deliveries for how it went)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := c.PingWebhook(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("webhook ping %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(a.out, "ping %s sent to %s\n", id, args[0])
			return err
		},
	}
	cmd.AddCommand(add, ls, rm, deliveries, ping)
	return cmd
}

// parseCrashLoop reads CRASHES/WINDOW, e.g. 5/15m.
func parseCrashLoop(s string) (client.CrashLoop, error) {
	n, win, ok := strings.Cut(s, "/")
	crashes, err := strconv.Atoi(n)
	if !ok || err != nil {
		return client.CrashLoop{}, fmt.Errorf("--crash-loop %q: want CRASHES/WINDOW, e.g. 5/15m", s)
	}
	d, err := time.ParseDuration(win)
	if err != nil {
		return client.CrashLoop{}, fmt.Errorf("--crash-loop %q: the window: %v", s, err)
	}
	return client.CrashLoop{Crashes: crashes, WindowSeconds: d.Seconds()}, nil
}
