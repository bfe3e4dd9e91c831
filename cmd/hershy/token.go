package main

import (
	"encoding/json"
	"fmt"

	"github.com/hershyorg/hershy/internal/client"
	"github.com/spf13/cobra"
)

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (admin)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "create USER",
		Short: "Create a token for USER; the token is shown only once",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(t)
			}
			_, err = fmt.Fprintf(a.out, "token for %s (id %s), shown only once:\n%s\n", t.UserID, t.ID, t.Token)
			return err
		},
	}, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List tokens",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			toks, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut() {
				if toks == nil {
					toks = []client.Token{}
				}
				return a.printJSON(map[string]any{"tokens": toks})
			}
			rows := make([][]string, 0, len(toks))
			for _, t := range toks {
				kind := "user"
				if t.Admin {
					kind = "admin"
				}
				rows = append(rows, []string{t.ID, t.UserID, kind, orDash(t.CreatedAt), orDash(t.RevokedAt)})
			}
			return table(a.out, []string{"ID", "USER", "KIND", "CREATED", "REVOKED"}, rows)
		},
	}, &cobra.Command{
		Use:     "revoke ID",
		Aliases: []string{"rm"},
		Short:   "Revoke a token",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(map[string]string{"id": args[0], "status": "revoked"})
			}
			_, err = fmt.Fprintf(a.out, "token %s revoked\n", args[0])
			return err
		},
	})
	return cmd
}

func (a *app) printJSONLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.out, "%s\n", b)
	return err
}
