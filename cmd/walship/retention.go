package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/walship/walship/scheduler"
)

// retentionResult is what retention --json prints.
type retentionResult struct {
	DryRun bool `json:"dry_run"`
	*scheduler.Plan
}

func retentionCmd(c *config) *cobra.Command {
	var window string
	var p scheduler.Policy
	var dryRun, yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "retention --recovery-window D | --keep N [--dry-run | --yes]",
		Short: "delete expired backups, the WAL no kept backup needs, and leftovers of incomplete backups",
		Long: `Applies exactly one retention policy:

  --keep N              keep the N newest complete backups (by the stop time in
                        their manifests) and the WAL from the oldest kept
                        backup's start segment on
  --recovery-window D   keep what recovery to any point in [now-D, now] needs:
                        the newest backup that ended at or before now-D, every
                        newer one, and the WAL from that backup's start on
                        (D: 30d days, 4w weeks, 6m months of 31 days, 12h hours)

WAL of later timelines descending from a kept backup's timeline (by the
history files) is kept from the same segment on. The newest complete backup
is never deleted; history files are always kept; WAL of a timeline whose
history cannot be read is kept. Backups without a manifest that wrote nothing
for --incomplete-grace (killed or failed backups) are deleted too; younger
ones may still be running and are kept, with all WAL stored since they began.

Retention deletes only when told to: with --yes (or
WALSHIP_RETENTION_APPLY=true, for cron and schedulers). Without it, it only
shows what it would delete, wherever its output goes. It prints what is (or
would be) deleted and the recoverable window that remains.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if window != "" {
				d, err := scheduler.ParseWindow(window)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--recovery-window %w", err)}
				}
				p.Window = d
			}
			if cmd.Flags().Changed("keep") && p.Keep == 0 {
				return &exitError{code: 2, err: errors.New("--keep 0 would delete every backup: keep at least 1")}
			}
			if err := p.Check(); err != nil {
				return &exitError{code: 2, err: err}
			}
			dry, err := retentionDryRun(cmd, dryRun, yes)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			st, dec, _, err := c.reader(cmd.Context())
			if err != nil {
				return err
			}
			p.Now = time.Now()
			plan, err := scheduler.PlanRetention(cmd.Context(), st, dec, p)
			if err != nil {
				return fmt.Errorf("retention failed: %w", err)
			}
			if !dry {
				if err := scheduler.Apply(cmd.Context(), st, plan, c.logger()); err != nil {
					return fmt.Errorf("retention failed: %w", err)
				}
			}
			if asJSON {
				if dry {
					// The JSON says so too; a log of the run should as well.
					fmt.Fprintln(cmd.ErrOrStderr(), "walship:", dryRunNotice)
				}
				return printJSON(cmd.OutOrStdout(), retentionResult{DryRun: dry, Plan: plan})
			}
			printRetention(cmd.OutOrStdout(), plan, dry)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&window, "recovery-window", "", "keep what recovery to any point in the last D needs (30d, 4w, 6m = 6×31 days, 12h)")
	f.IntVar(&p.Keep, "keep", 0, "keep the N newest complete backups")
	f.DurationVar(&p.IncompleteGrace, "incomplete-grace", scheduler.DefaultIncompleteGrace, "delete backups without a manifest that wrote nothing for this long")
	f.BoolVar(&dryRun, "dry-run", false, "only show what would be deleted (the default without --yes)")
	f.BoolVarP(&yes, "yes", "y", false, "delete what the policy expires (without it, retention only shows what it would delete)")
	f.BoolVar(&asJSON, "json", false, "print the plan (and whether it was applied) as JSON")
	return cmd
}

// retentionDryRun decides whether to delete: only when the operator said
// so. Never by where stdout goes: /dev/null is a character device too, and
// "is it a terminal" once made cron delete nothing and "| tee" delete.
func retentionDryRun(cmd *cobra.Command, dryRun, yes bool) (bool, error) {
	explicitDry := cmd.Flags().Changed("dry-run")
	switch {
	case yes && explicitDry && dryRun:
		return false, errors.New("--yes and --dry-run contradict each other: give one")
	case explicitDry && !dryRun && !yes:
		return false, errors.New("--dry-run=false does not delete: give --yes (or set WALSHIP_RETENTION_APPLY=true) to delete")
	}
	return !yes, nil
}

// dryRunNotice heads the output of a dry run.
const dryRunNotice = "dry run: nothing deleted; add --yes to delete"

func printRetention(out io.Writer, plan *scheduler.Plan, dry bool) {
	verb := "deleted"
	if dry {
		verb = "would delete"
		fmt.Fprintln(out, dryRunNotice)
	}
	fmt.Fprintf(out, "policy: %s", plan.Policy)
	if plan.Cutoff != nil {
		fmt.Fprintf(out, " (recovery to %s and later)", plan.Cutoff.Format(time.RFC3339))
	}
	fmt.Fprintln(out)
	for _, w := range plan.Warnings {
		fmt.Fprintln(out, "warning:", w)
	}
	for _, b := range plan.Expired {
		fmt.Fprintf(out, "%s backup %s (ended %s, timeline %d, WAL from %s)\n", verb, b.ID, b.StopTime.Format(time.RFC3339), b.Timeline, b.StartWAL)
	}
	for _, b := range plan.Incomplete {
		fmt.Fprintf(out, "%s incomplete backup %s (%d objects, last written %s)\n", verb, b.ID, b.Objects, b.LastWrite.Format(time.RFC3339))
	}
	for _, b := range plan.IncompleteKept {
		fmt.Fprintf(out, "kept incomplete backup %s (last written %s: may still be running)\n", b.ID, b.LastWrite.Format(time.RFC3339))
	}
	for _, key := range plan.WAL {
		fmt.Fprintf(out, "%s %s\n", verb, key)
	}
	fmt.Fprintf(out, "%s %d backup(s), %d incomplete backup(s), %d WAL file(s); kept %d backup(s), %d WAL file(s)\n",
		verb, len(plan.Expired), len(plan.Incomplete), len(plan.WAL), len(plan.Kept), plan.WALKept)
	printWindows(out, plan.Windows)
}
