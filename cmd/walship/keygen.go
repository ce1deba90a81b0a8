package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/walship/walship/internal/codec"
)

func keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "print a new repository key (for WALSHIP_REPO_KEY_FILE)",
		Long: `Prints a new random repository key. Save it to a file readable only by the
PostgreSQL user, give every server and person that writes to or reads from the
repository the same file (WALSHIP_REPO_KEY_FILE), and set it before the
repository is created: every object then carries a MAC under it, and one
altered or written without it is refused. Losing the key makes the
repository unreadable for walship.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), codec.NewRepositoryKey())
			return err
		},
	}
}
