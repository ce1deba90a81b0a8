package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/restore"
)

func restoreCmd(c *config) *cobra.Command {
	var tf restore.TargetFlags
	var o restore.Options
	var spaces []string
	var asJSON bool
	var archiveMode string
	cmd := &cobra.Command{
		Use:   "restore --pgdata DIR [--backup ID] [--target-time T | --target-lsn L | --target-xid X | --target-name N | --target-immediate]",
		Short: "lay down a base backup and the settings for point-in-time recovery",
		Long: `Restores a base backup into an empty (or missing) data directory and writes
recovery.signal and the recovery settings into postgresql.auto.conf, so that
PostgreSQL, when started on it, fetches WAL with this walship binary
(restore_command = 'walship wal-fetch %f %p --repo ...') and stops at the target.

Without --backup, the newest backup that ends before the target is used. The
target must lie in the recoverable window (walship backup list shows it);
every check happens before anything is written, and a restore that fails
removes what it wrote. Run it as the user PostgreSQL runs as.

Archiving is turned off in the restored configuration (--archive-mode off):
a copy started with the source's environment would otherwise archive its
new timeline into the source's repository. A replica, or a real disaster
recovery that replaces the source, wants --archive-mode preserve.

restore_command carries the repository's location and other non-secret
settings (--repo, --s3-endpoint, --s3-region, --s3-path-style, --s3-ca-file,
--encryption-key-file, --repo-key-file: paths, not keys) as flags; credentials (AWS_ACCESS_KEY_ID, ...) must be
in the environment of the server that recovers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if c.pgdata == "" {
				return fmt.Errorf("no data directory to restore into: give --pgdata DIR (or set PGDATA)")
			}
			t, err := restore.ParseTarget(tf)
			if err != nil {
				return err
			}
			o.Target = t
			if o.Tablespaces, err = parseTablespaces(spaces); err != nil {
				return err
			}
			st, dec, _, err := c.reader(cmd.Context())
			if err != nil {
				return err
			}
			if o.RestoreCommand, err = c.restoreCommand(); err != nil {
				return err
			}
			o.PGData, o.Log = c.pgdata, c.logger()
			o.Archive = restore.ArchiveMode(archiveMode)
			if progress.ToTerminal(os.Stderr) {
				o.Progress = progressLine(time.Now())
				defer fmt.Fprintln(os.Stderr)
			}
			res, err := restore.Restore(cmd.Context(), st, dec, o)
			if err != nil {
				return fmt.Errorf("restore failed: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "restored backup %s into %s: %d files, %s from %d objects, all verified\n",
				res.Backup.ID, c.pgdata, res.Files, bytesText(res.Bytes), res.Objects)
			fmt.Fprintf(out, "recovery target: %s on timeline %d (archive reaches %s, segment %s)\n",
				t, res.Timeline, res.Window.EndLSN, res.Window.EndWAL)
			fmt.Fprintln(out, archivingText(res.Archive))
			fmt.Fprintf(out, "start PostgreSQL on %s to recover; it runs restore_command = %s\n", c.pgdata, pg.ConfQuote(res.Settings[0][1]))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&c.pgdata, "pgdata", "D", "", "data directory to restore into: missing or empty")
	f.StringVar(&o.BackupID, "backup", "latest", "backup ID to restore, or latest: the newest that ends before the target")
	f.StringVar(&tf.Time, "target-time", "", "recover to this time (RFC 3339 or 2026-11-25 14:05:00+00; UTC without a zone)")
	f.StringVar(&tf.LSN, "target-lsn", "", "recover to this WAL location (like 0/3000060)")
	f.StringVar(&tf.XID, "target-xid", "", "recover to the commit of this transaction ID")
	f.StringVar(&tf.Name, "target-name", "", "recover to this restore point (pg_create_restore_point)")
	f.BoolVar(&tf.Immediate, "target-immediate", false, "stop as soon as the backup is consistent")
	f.BoolVar(&tf.Exclusive, "exclusive", false, "stop just before the target (time, LSN, xid) instead of just after it")
	f.StringVar(&tf.Timeline, "target-timeline", "latest", "timeline to recover along: latest, current or a number")
	f.StringVar(&tf.Action, "target-action", "promote", "on reaching the target: promote, pause or shutdown")
	f.StringArrayVar(&spaces, "tablespace", nil, "restore tablespace OID at DIR instead of its original location (OID=DIR, repeatable)")
	f.BoolVar(&o.DeleteExisting, "delete-existing", false, "replace the contents of a non-empty data directory (never one a running server uses)")
	f.IntVarP(&o.Jobs, "jobs", "j", restore.DefaultJobs(), "objects downloaded and written in parallel")
	f.StringVar(&archiveMode, "archive-mode", string(restore.ArchiveOff), "the source's WAL archiving in the restored configuration: off (archive_mode = off, so a copy never archives into the source's repository) or preserve (for a replica or a real disaster recovery)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// archivingText says what became of the source's archiving.
func archivingText(a restore.ArchiveMode) string {
	if a == restore.ArchivePreserve {
		return "archiving: the source's settings are kept (--archive-mode preserve): once promoted, this server archives wherever the source archived"
	}
	return "archiving: off (archive_mode = 'off', recovery_end_command and archive_cleanup_command emptied in postgresql.auto.conf), " +
		"so this copy never writes into the source's repository; restore with --archive-mode preserve for a replica or a real disaster recovery"
}

// parseTablespaces parses --tablespace OID=DIR flags.
func parseTablespaces(flags []string) (map[uint32]string, error) {
	out := map[uint32]string{}
	for _, s := range flags {
		oid, dir, ok := strings.Cut(s, "=")
		n, err := strconv.ParseUint(oid, 10, 32)
		if !ok || err != nil || n == 0 || dir == "" {
			return nil, fmt.Errorf("--tablespace %q: use OID=DIR, e.g. 16385=/srv/ts1 (the OIDs are the names in pg_tblspc)", s)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		if _, dup := out[uint32(n)]; dup {
			return nil, fmt.Errorf("--tablespace %d given twice", n)
		}
		out[uint32(n)] = abs
	}
	return out, nil
}

// restoreCommand is restore_command for the restored server: this binary,
// with the repository settings that are not secret, so the server fetches
// from the repository the backup came from whatever WALSHIP_REPO its own
// environment holds. Credentials stay in the environment.
func (c *config) restoreCommand() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this walship binary for restore_command: %w", err)
	}
	args := []string{"--repo", c.repo}
	for _, kv := range [][2]string{
		{"--s3-endpoint", c.s3.Endpoint},
		{"--s3-region", c.s3.Region},
		{"--s3-ca-file", c.s3.CAFile},
		{"--encryption-key-file", c.keyFile},
		{"--repo-key-file", c.repoKeyFile},
	} {
		if kv[1] == "" {
			continue
		}
		v := kv[1]
		if kv[0] != "--s3-endpoint" && kv[0] != "--s3-region" {
			if v, err = filepath.Abs(v); err != nil {
				return "", err
			}
		}
		args = append(args, kv[0], v)
	}
	if c.s3.PathStyle {
		args = append(args, "--s3-path-style")
	}
	return restore.RestoreCommand(exe, args...), nil
}
