package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func (a *app) stateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Export or import a program's /state (a .tar.gz)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "export ID",
		Short: "Write the program's /state to stdout as a .tar.gz (a running program is stopped for the copy and started again)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			rc, err := c.ExportState(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("state export %s: %w", args[0], err)
			}
			defer rc.Close()
			if _, err := io.Copy(a.out, rc); err != nil {
				return fmt.Errorf("state export %s: %w", args[0], err)
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "import ID FILE",
		Short: "Replace the /state of a stopped program with a .tar.gz (FILE, or - for stdin)",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var in io.Reader = os.Stdin
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			files, n, err := c.ImportState(cmd.Context(), args[0], in)
			if err != nil {
				return fmt.Errorf("state import %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(a.out, "%s: /state imported (%d files, %d bytes)\n", args[0], files, n)
			return err
		},
	})
	return cmd
}
