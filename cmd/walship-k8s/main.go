// Command walship-k8s holds walship's Kubernetes code: the operator's
// controllers (and, later, the instance manager). It is apart from walship
// so that PostgreSQL's archive_command does not load client-go at every
// call; `walship operator` runs it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "walship-k8s",
		Short:         "walship's Kubernetes commands (also run as `walship operator`)",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see walship %s --help)", err, cmd.Name())
	})
	root.AddCommand(operatorCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "walship:", err)
		os.Exit(1)
	}
}
