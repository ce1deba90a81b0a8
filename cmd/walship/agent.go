package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/walship/walship/archiver"
)

func agentCmd(c *config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "ship WAL continuously beside PostgreSQL; wal-push becomes a thin client",
		Long: `Runs until stopped. Ships every file PostgreSQL marks ready in pg_wal as soon
as it appears, with --parallel uploads over warm connections, and answers
wal-push over the Unix socket pg_wal/walship/agent.sock: wal-push then returns
as soon as its file is durable. Run it as the PostgreSQL user with the same
WALSHIP_* settings as archive_command.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if c.pgdata == "" {
				return errors.New("no data directory: set PGDATA or --pgdata")
			}
			if _, err := os.Stat(filepath.Join(c.pgdata, "PG_VERSION")); err != nil {
				return fmt.Errorf("%s is not a PostgreSQL data directory (no PG_VERSION)", c.pgdata)
			}
			// wal-push names the socket, and its key files, relative to the
			// data directory, where PostgreSQL runs archive_command; the
			// agent keeps its working directory and resolves them there.
			target := c.agentTarget()
			c.keyFile, c.repoKeyFile = underDir(c.pgdata, c.keyFile), underDir(c.pgdata, c.repoKeyFile)
			sh, err := c.shipper(cmd.Context(), filepath.Join(c.pgdata, "pg_wal"))
			if err != nil {
				return err
			}
			a := &archiver.Agent{Shipper: sh, Repo: target, Explain: explained}
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&c.pgdata, "pgdata", "D", "", "PostgreSQL data directory")
	cmd.Flags().IntVar(&c.walParallel, "parallel", 4, "files uploaded at once")
	return cmd
}

// underDir is path as seen from dir: unchanged when absolute or empty.
func underDir(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
