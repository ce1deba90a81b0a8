// Command walship archives PostgreSQL WAL to object storage and restores it.
// This file holds the command tree only; the work happens in the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

var version = "dev"

// memoryLimit is a soft limit for the Go heap: the garbage collector works
// harder near it instead of letting the heap double. Memory must not grow
// with the backlog; GOMEMLIMIT overrides it.
const memoryLimit = 96 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if cmd != nil && cmd.Name() == "wal-fetch" {
		// Any wal-fetch failure that is not "not in the archive" (wrong
		// arguments, a bad setting) must stop recovery, not end it.
		code = exitFatal
	}
	if ee == nil || ee.err != errQuiet {
		fmt.Fprintln(os.Stderr, "walship:", err)
	}
	os.Exit(code)
}

// errQuiet exits with a code and no message (wal-fetch's "not found").
var errQuiet = errors.New("")

func newRoot() *cobra.Command {
	c := &config{}
	root := &cobra.Command{
		Use:           "walship",
		Short:         "WAL archiving, base backups and point-in-time recovery for PostgreSQL",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	// A restore_command mistake must stop recovery, not read as "not found".
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if cmd.Name() == "wal-fetch" {
			return &exitError{code: exitFatal, err: err}
		}
		return &exitError{code: 2, err: fmt.Errorf("%w (see walship %s --help)", err, cmd.Name())}
	})
	c.registerCommon(root.PersistentFlags())
	root.AddCommand(walPushCmd(c), walFetchCmd(c), agentCmd(c), checkCmd(c), backupCmd(c), restoreCmd(c), verifyCmd(c), retentionCmd(c))
	return root
}
