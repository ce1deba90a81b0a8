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
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	// Answers wal-fetch from the spool and wal-push through the agent
	// before the heavy packages initialise; see its documentation.
	_ "github.com/walship/walship/internal/fastpath"
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
	stopProfile := cpuProfile()
	root := newRoot()
	cmd, err := root.ExecuteContextC(ctx)
	stopProfile()
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
		fmt.Fprintln(os.Stderr, "walship:", explain(err))
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
			return applyEnv(cmd)
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
	root.AddCommand(walPushCmd(c), walFetchCmd(c), agentCmd(c), checkCmd(c), backupCmd(c), restoreCmd(c), verifyCmd(c), retentionCmd(c), keygenCmd(), instanceCmd(),
		kubeCmd("operator", "Run the Kubernetes controllers (in walship-k8s; the operator's Deployment runs this)"))
	return root
}

// cpuProfile writes a CPU profile of this process to
// $WALSHIP_CPUPROFILE.<pid> when that variable is set: how the agent, a
// prefetcher or a backup spend their time, for `go tool pprof`.
func cpuProfile() (stop func()) {
	prefix := os.Getenv("WALSHIP_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "walship: WALSHIP_CPUPROFILE:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
