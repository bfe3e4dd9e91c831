package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) releasesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "releases ID",
		Short: "List a program's kept releases, newest first (each source it was given)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			rs, err := c.Releases(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("releases %s: %w", args[0], err)
			}
			if a.jsonOut() {
				return a.printJSON(rs)
			}
			now := time.Now()
			var rows [][]string
			for _, r := range rs {
				n := strconv.Itoa(r.Number)
				if r.Current {
					n += " *"
				}
				digest := r.Digest
				if len(digest) > 19 {
					digest = digest[:19]
				}
				rows = append(rows, []string{n, r.BuildID, age(r.CreatedAt, now), r.CreatedBy, digest, r.Note})
			}
			return table(a.out, []string{"RELEASE", "BUILD", "AGE", "BY", "SOURCE", "NOTE"}, rows)
		},
	}
}

func (a *app) rollbackCmd() *cobra.Command {
	var to int
	cmd := &cobra.Command{
		Use:   "rollback ID",
		Short: "Start a program on an earlier release (default: the one before the newest), keeping /state",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to < 0 {
				return usageError{fmt.Errorf("--to must be a release number")}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Rollback(cmd.Context(), args[0], to)
			if err != nil {
				return fmt.Errorf("rollback %s: %w", args[0], err)
			}
			if a.jsonOut() {
				return a.printJSON(res)
			}
			_, err = fmt.Fprintf(a.out, "%s: release %d (%s), build %s, state %s\n",
				args[0], res.Release.Number, res.Release.Note, res.Release.BuildID, res.Program.State)
			return err
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the release number to go back to (see hershy releases)")
	return cmd
}
