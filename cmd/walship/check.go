package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/walship/walship/internal/repo"
)

func checkCmd(c *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "prove the configuration works: store reachable, write/read/list/delete, missing objects read as not found, no overwrites, repository identity",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			return repo.Check(cmd.Context(), c.settings(), c.pgdata, func(s repo.Step) {
				switch {
				case errors.Is(s.Err, repo.ErrNoURL):
					fmt.Fprintf(out, "FAIL  %-11s %v\n", s.Name, errNoRepo) // with the flag to set
				case s.Err != nil:
					fmt.Fprintf(out, "FAIL  %-11s %s\n", s.Name, explain(s.Err))
				case s.Warning:
					fmt.Fprintf(out, "WARN  %-11s %s\n", s.Name, s.Detail)
				default:
					fmt.Fprintf(out, "ok    %-11s %s\n", s.Name, s.Detail)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&c.pgdata, "pgdata", "D", "", "also check that this data directory's server may use the repository")
	return cmd
}
