package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/walship/walship/restore"
)

func verifyCmd(c *config) *cobra.Command {
	var o restore.VerifyOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--backup ID|latest] [--to-latest] [--json]",
		Short: "prove that backups restore: download and check every object, file and WAL segment",
		Long: `Downloads every object of a backup (without --backup: of every complete
backup) and checks it against the manifest: each object decodes and matches
its checksum, each file re-assembled from its parts matches its size and
checksum. Then checks that the WAL from the backup's start segment to its stop
segment is archived without a gap (with --to-latest: up to the newest segment
archived along the latest timeline that continues from the backup, following
timeline history files). Nothing is written to disk.

Each problem is printed on its own line, naming the object, file or segment;
the exit status is 1 when there is any, 0 when everything verified.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, dec, _, err := c.reader(cmd.Context())
			if err != nil {
				return err
			}
			o.Log = c.logger()
			rep, err := restore.Verify(cmd.Context(), st, dec, o)
			if err != nil {
				return fmt.Errorf("verify failed: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(out, rep); err != nil {
					return err
				}
			} else {
				printVerify(cmd, rep)
			}
			if !rep.OK {
				return &exitError{code: 1, err: errQuiet}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Backup, "backup", "", "backup ID to verify, or latest (default: every complete backup)")
	f.BoolVar(&o.ToLatest, "to-latest", false, "check the WAL up to the newest archived segment, not only to the backup's end")
	f.IntVarP(&o.Jobs, "jobs", "j", runtime.NumCPU(), "objects downloaded and checked in parallel")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// printVerify prints one line per problem and a summary per backup.
func printVerify(cmd *cobra.Command, rep *restore.VerifyReport) {
	out := cmd.OutOrStdout()
	for _, b := range rep.Backups {
		for _, p := range b.Problems {
			fmt.Fprintln(out, "problem:", p)
		}
		state := "OK"
		if len(b.Problems) > 0 {
			state = fmt.Sprintf("%d problem(s)", len(b.Problems))
		}
		fmt.Fprintf(out, "backup %s: %s: %d objects, %d files, %s checked; WAL %s..%s (%d segments)\n",
			b.ID, state, b.Objects, b.Files, bytesText(b.Bytes), orNothing(b.WALFrom), orNothing(b.WALTo), b.Segments)
	}
}
