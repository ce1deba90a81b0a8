package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/walship/walship/internal/agentsock"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/spool"
	"github.com/walship/walship/restore"
)

// exitFatal is what wal-fetch returns when the archive could not be read.
// PostgreSQL treats a restore_command exit status above 125 as fatal and
// stops recovery, instead of taking it for "not found" and ending recovery
// early at the wrong point.
const exitFatal = 128

func walPushCmd(c *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wal-push PATH",
		Short: "archive one WAL file (archive_command = 'walship wal-push %p')",
		Long: `Archives one file from pg_wal and exits 0 only once the store confirmed it.
While doing so it also ships up to --parallel-1 other files PostgreSQL marked
ready, so that its next calls return at once. When a walship agent serves this
pg_wal directory, wal-push only asks it and waits for the answer.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			name := filepath.Base(path)
			if pg.KindOf(name) == pg.KindUnknown {
				return fmt.Errorf("%s is not a file walship archives: expected a WAL segment, .partial, .backup or .history file from pg_wal", path)
			}
			if _, err := os.Stat(path); err != nil {
				return err
			}
			walDir := filepath.Dir(path)
			if !c.noAgent && c.repo != "" {
				err := agentsock.Ask(walDir, c.agentTarget(), name, c.agentTimeout)
				if !errors.Is(err, agentsock.ErrNoAgent) {
					return err
				}
			}
			sh, err := c.shipper(cmd.Context(), walDir)
			if err != nil {
				return err
			}
			return sh.PushWithLookahead(cmd.Context(), name)
		},
	}
	cmd.Flags().IntVar(&c.walParallel, "parallel", 4, "files uploaded at once, the requested one included")
	cmd.Flags().DurationVar(&c.agentTimeout, "agent-timeout", 10*time.Minute, "how long to wait for the agent's answer")
	cmd.Flags().BoolVar(&c.noAgent, "no-agent", false, "do not ask a running agent; ship the file from this process")
	return cmd
}

func walFetchCmd(c *config) *cobra.Command {
	var prefetchFor string
	var systemID uint64
	cmd := &cobra.Command{
		Use:   "wal-fetch NAME DEST",
		Short: "restore one WAL file (restore_command = 'walship wal-fetch %f %p')",
		Long: `Fetches, decrypts, decompresses and verifies one archived file and writes DEST
atomically. Exit status: 0 fetched; 1 not in the archive (the repository is
there, with its identity record, of the expected system); 128 anything else
(store unreachable, no repository at this location, another system's
repository, damaged object, bad configuration) — above 125, so PostgreSQL
stops recovery instead of ending it early.

After a segment, a background process prefetches the next --prefetch segments
into pg_wal/walship/prefetch, so PostgreSQL's next calls are served locally.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := runWalFetch(cmd, c, args[0], args[1], prefetchFor, systemID)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, restore.ErrNotInArchive):
				if c.verbose {
					fmt.Fprintln(os.Stderr, "walship:", explain(err))
				}
				return &exitError{code: 1, err: errQuiet}
			default:
				return &exitError{code: exitFatal, err: err}
			}
		},
	}
	cmd.Flags().IntVar(&c.prefetch, "prefetch", 8, "segments to fetch ahead (0: none)")
	cmd.Flags().Uint64Var(&systemID, "system-id", 0, "the database system recovery expects; a repository of another system is an error (restore writes it)")
	cmd.Flags().StringVar(&prefetchFor, "prefetch-after", "", "internal: fill the spool after this segment and exit")
	cmd.Flags().MarkHidden("prefetch-after")
	return cmd
}

func runWalFetch(cmd *cobra.Command, c *config, name, dest, prefetchFor string, systemID uint64) error {
	if pg.KindOf(name) == pg.KindUnknown {
		return fmt.Errorf("%q is not a WAL segment, .partial, .backup or .history file name", name)
	}
	// The common case during recovery: the prefetcher already has the file.
	// Answer before loading any store configuration.
	sp := spool.For(dest, spool.Location(c.repo, c.s3.Endpoint))
	if prefetchFor == "" && sp.Take(cmd.Context(), name, dest) {
		if c.prefetch > 0 && !sp.PrefetcherAlive() {
			startPrefetcher(name, dest)
		}
		return nil
	}
	st, dec, id, err := c.reader(cmd.Context())
	if err != nil {
		return fmt.Errorf("cannot fetch %s: %w", name, err)
	}
	f := &restore.Fetcher{Store: st, Decoder: dec, Log: c.logger(), SystemID: systemID, Identity: id,
		Spool: sp}
	if prefetchFor != "" {
		// Depth and parallelism differ: a few downloads at once saturate the
		// link, and each one holds buffers.
		return f.Prefetch(cmd.Context(), name, dest, c.prefetch, min(c.prefetch, 4))
	}
	if err := f.Fetch(cmd.Context(), name, dest); err != nil {
		return err
	}
	if c.prefetch > 0 && pg.KindOf(name) == pg.KindSegment && !sp.PrefetcherAlive() {
		startPrefetcher(name, dest)
	}
	return nil
}

// startPrefetcher runs "walship wal-fetch --prefetch-after" detached, so
// PostgreSQL replays this segment while the next ones download. A failure to
// start only costs speed.
func startPrefetcher(name, dest string) {
	self, err := os.Executable()
	if err != nil {
		return
	}
	// Standard streams go to /dev/null, never left closed: a closed fd 2
	// would be reused by the next file opened, and a log line would land in it.
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer null.Close()
	args := append([]string{self}, os.Args[1:]...)
	args = append(args, "--prefetch-after", name)
	p, err := os.StartProcess(self, args, &os.ProcAttr{
		Files: []*os.File{null, null, null},
		Sys:   detached(),
	})
	if err == nil {
		p.Release()
	}
}
