package main

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hershyorg/hershy/internal/source"
)

// sourceCmd downloads what a program was built from: the source as the
// Host stores it, into a new folder (or, without one, a list of its files).
func (a *app) sourceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "source ID [DIR]",
		Short: "Download a program's stored source into DIR (a new folder), or list its files",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			src, err := c.GetSource(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			files := source.Files(src.Files)
			if len(args) == 2 {
				// The same checks as an upload: the answer names the paths
				// written on this machine.
				if err := source.ValidateSource("", files, source.Limits{}); err != nil {
					return fmt.Errorf("source: the Host sent an unusable tree: %w", err)
				}
				if err := source.WriteTree(args[1], "", files); err != nil {
					return fmt.Errorf("source: %w", err)
				}
				fmt.Fprintf(a.errOut, "wrote %d files to %s\n", len(files), args[1])
				return nil
			}
			if a.jsonOut() {
				return a.printJSON(src)
			}
			paths := make([]string, 0, len(files))
			for p := range files {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			rows := make([][]string, 0, len(paths))
			for _, p := range paths {
				rows = append(rows, []string{p, strconv.Itoa(len(files[p]))})
			}
			return table(a.out, []string{"PATH", "BYTES"}, rows)
		},
	}
}
