package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"runtime"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/walship/walship/archiver"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/scheduler"
)

func backupCmd(c *config) *cobra.Command {
	var o archiver.BackupOptions
	var asJSON bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "take a base backup of the running server (and: backup list|show|delete)",
		Long: `Takes an online base backup of the server at PGHOST/PGPORT (libpq's variables,
or --pghost/--pgport/--pguser/--pgdatabase) whose data directory is PGDATA.
The backup is recorded as complete only once every WAL segment from its start
to its stop is in the repository, so every listed backup can be restored.

It first deletes the leftovers of incomplete backups (killed or failed) that
wrote nothing for --incomplete-grace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if c.pgdata == "" {
				return fmt.Errorf("no data directory: set PGDATA or --pgdata")
			}
			st, err := c.openStore(cmd.Context())
			if err != nil {
				return err
			}
			enc, err := c.encoder()
			if err != nil {
				return err
			}
			if o.RepoKey, err = c.repoKey(); err != nil {
				return err
			}
			o.PGData, o.Log = c.pgdata, c.logger()
			scheduler.CleanLeftovers(cmd.Context(), st, grace, time.Now(), o.Log)
			if progress.ToTerminal(os.Stderr) {
				o.Progress = progressLine(time.Now())
				defer fmt.Fprintln(os.Stderr)
			}
			m, err := archiver.Backup(cmd.Context(), st, enc, o)
			if err != nil {
				return fmt.Errorf("backup failed: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), m.BackupSummary)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup %s complete: %s (%s stored) in %s, WAL %s..%s\n", m.ID,
				bytesText(m.Size), bytesText(m.StoredSize), seconds(m.Duration), m.StartWAL, m.StopWAL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&c.pgdata, "pgdata", "D", "", "data directory of the server to back up")
	f.StringVar(&o.Conn.Host, "pghost", "", "server host or socket directory (default: PGHOST)")
	f.Uint16Var(&o.Conn.Port, "pgport", 0, "server port (default: PGPORT, else 5432)")
	f.StringVar(&o.Conn.User, "pguser", "", "user to connect as, with the right to run pg_backup_start (default: PGUSER)")
	f.StringVar(&o.Conn.Database, "pgdatabase", "", "database to connect to (default: PGDATABASE)")
	f.StringVar(&o.Label, "label", "", "backup label (default: walship <ID>)")
	f.BoolVar(&o.FastCheckpoint, "fast-checkpoint", false, "start with an immediate checkpoint instead of a spread one")
	f.IntVarP(&o.Jobs, "jobs", "j", runtime.NumCPU(), "files read, compressed and uploaded in parallel")
	f.DurationVar(&o.WALTimeout, "wal-timeout", 5*time.Minute, "how long to wait for the backup's WAL to be archived")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.DurationVar(&grace, "incomplete-grace", scheduler.DefaultIncompleteGrace, "first delete backups without a manifest that wrote nothing for this long")
	cmd.AddCommand(backupListCmd(c), backupShowCmd(c), backupDeleteCmd(c))
	return cmd
}

// listedBackup is one element of backup list --json: the summary and the
// recoverable windows that start from this backup, one per timeline it
// reaches. (An array of backups, as before, so scripts keep working.)
type listedBackup struct {
	catalog.BackupSummary
	Windows []catalog.Window `json:"recoverable_windows"`
}

func backupListCmd(c *config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the complete backups, oldest first, and the recoverable window of each timeline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := c.openStore(cmd.Context())
			if err != nil {
				return err
			}
			list, incomplete, err := catalog.ListBackups(cmd.Context(), st)
			if err != nil {
				return err
			}
			dec, id, err := c.decoderFor(cmd.Context(), st)
			if err != nil {
				return err
			}
			arch, err := catalog.LoadArchive(cmd.Context(), st, dec, catalog.SegmentSize(id, list))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				listed := []listedBackup{}
				for _, b := range list {
					lb := listedBackup{BackupSummary: b, Windows: []catalog.Window{}}
					for _, tli := range arch.Timelines() {
						if w, ok := arch.Reach(b, tli); ok {
							lb.Windows = append(lb.Windows, w)
						}
					}
					listed = append(listed, lb)
				}
				return printJSON(out, listed)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTART\tDURATION\tSIZE\tSTORED\tSTART LSN\tSTOP LSN\tTIMELINE")
			for _, b := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", b.ID, b.StartTime.Format(time.RFC3339),
					seconds(b.Duration), bytesText(b.Size), bytesText(b.StoredSize), b.StartLSN, b.StopLSN, b.Timeline)
			}
			tw.Flush()
			if len(incomplete) > 0 {
				// Killed or failed backups: their objects wait for cleanup.
				fmt.Fprintf(out, "incomplete: %d\n", len(incomplete))
			}
			printWindows(out, arch.Windows(list))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of backup summaries, each with the recoverable windows it starts")
	return cmd
}

// printWindows prints the recoverable window of each timeline.
func printWindows(out io.Writer, ws []catalog.Window) {
	if len(ws) == 0 {
		fmt.Fprintln(out, "recoverable window: none (no backup whose WAL is archived)")
		return
	}
	fmt.Fprintln(out, "recoverable window (point-in-time recovery reaches, per timeline):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIMELINE\tFROM\tFROM LSN\tTO\tTO LSN\tLAST SEGMENT\tFROM BACKUP")
	for _, w := range ws {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", w.Timeline, w.StartTime.Format(time.RFC3339), w.StartLSN,
			w.DisplayEnd().Format(time.RFC3339), w.EndLSN, w.EndWAL, w.Backup)
	}
	tw.Flush()
}

func backupShowCmd(c *config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "show one backup's summary",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := c.openStore(cmd.Context())
			if err != nil {
				return err
			}
			b, err := catalog.LoadSummary(cmd.Context(), st, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, b)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			for _, row := range [][2]string{
				{"ID", b.ID}, {"status", b.Status}, {"label", b.Label},
				{"system identifier", fmt.Sprint(b.SystemID)}, {"PostgreSQL", fmt.Sprint(b.PGVersion)},
				{"timeline", fmt.Sprint(b.Timeline)},
				{"start", b.StartTime.Format(time.RFC3339) + "  " + b.StartLSN + "  " + b.StartWAL},
				{"stop", b.StopTime.Format(time.RFC3339) + "  " + b.StopLSN + "  " + b.StopWAL},
				{"duration", seconds(b.Duration)},
				{"size", fmt.Sprintf("%s in %d files, %s stored in %d objects (%s%s)", bytesText(b.Size), b.FileCount,
					bytesText(b.StoredSize), b.ObjectCount, b.Compression, map[bool]string{true: ", " + b.Encryption}[b.Encryption != ""])},
				{"from standby", fmt.Sprint(b.FromStandby)},
			} {
				fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
			}
			dec, _, err := c.decoderFor(cmd.Context(), st)
			if err != nil {
				return err
			}
			arch, err := catalog.LoadArchive(cmd.Context(), st, dec, b.WALSegmentSize)
			if err != nil {
				return err
			}
			for _, tli := range arch.Timelines() {
				w, ok := arch.Reach(b, tli)
				switch {
				case !ok:
				case !w.Complete:
					fmt.Fprintf(tw, "recoverable on timeline %d:\tno: the archive ends at %s, before the backup's stop LSN\n", tli, orNothing(w.EndLSN))
				default:
					fmt.Fprintf(tw, "recoverable on timeline %d:\tto %s (LSN %s, segment %s)\n", tli, w.EndTime.Format(time.RFC3339), w.EndLSN, w.EndWAL)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

func backupDeleteCmd(c *config) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "delete one backup (complete or not); the newest complete one only with --force",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := c.openStore(cmd.Context())
			if err != nil {
				return err
			}
			err = scheduler.DeleteBackup(cmd.Context(), st, args[0], force)
			var newest *scheduler.NewestBackupError
			if errors.As(err, &newest) {
				err = fmt.Errorf("%w: give --force to delete it anyway", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup %s deleted\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete the backup even if it is the newest complete one")
	return cmd
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// progressLine redraws one line on the terminal: bytes, rate, ETA.
func progressLine(start time.Time) func(done, total int64) {
	return func(done, total int64) {
		el := time.Since(start).Seconds()
		rate := float64(done) / max(el, 0.001)
		eta := "?"
		if rate > 0 {
			eta = seconds(float64(total-done) / rate)
		}
		fmt.Fprintf(os.Stderr, "\r%s / %s  %s/s  ETA %s   ", bytesText(done), bytesText(total), bytesText(int64(rate)), eta)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}
