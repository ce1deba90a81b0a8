package restore

import (
	"fmt"
	"strconv"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
)

// ChooseBackup picks the backup to restore from the complete backups
// (oldest first). With an ID ("" or "latest": choose) it must exist and end
// before the target. Otherwise it is the newest backup that ends before
// the target: for a time, StopTime < target; for an LSN, StopLSN <= target;
// for any other target, simply the newest.
func ChooseBackup(list []catalog.BackupSummary, id string, t Target) (catalog.BackupSummary, error) {
	if len(list) == 0 {
		return catalog.BackupSummary{}, fmt.Errorf("the repository holds no complete backup: take one with walship backup")
	}
	if id != "" && id != "latest" {
		for _, b := range list {
			if b.ID == id {
				return b, endsBefore(b, t)
			}
		}
		return catalog.BackupSummary{}, fmt.Errorf("no complete backup %s in the repository: see walship backup list", id)
	}
	for i := len(list) - 1; i >= 0; i-- {
		if endsBefore(list[i], t) == nil {
			return list[i], nil
		}
	}
	oldest := list[0]
	switch t.Kind {
	case TargetTime:
		return catalog.BackupSummary{}, fmt.Errorf("recovery target %s is before the recoverable window: the oldest backup, %s, ended at %s; choose a later time",
			t, oldest.ID, oldest.StopTime.Format(time.RFC3339Nano))
	default:
		return catalog.BackupSummary{}, fmt.Errorf("recovery target %s is before the recoverable window: the oldest backup, %s, ended at LSN %s; choose a later LSN",
			t, oldest.ID, oldest.StopLSN)
	}
}

// endsBefore reports (as an error for people) whether backup b ends before
// target t, so that recovery from b can reach it.
func endsBefore(b catalog.BackupSummary, t Target) error {
	switch t.Kind {
	case TargetTime:
		if !b.StopTime.Before(t.Time) {
			return fmt.Errorf("recovery target %s is before the end of backup %s (%s): a backup restores only to points after it ended; choose a later time or an older backup (walship backup list)",
				t, b.ID, b.StopTime.Format(time.RFC3339Nano))
		}
	case TargetLSN:
		stop, err := b.Stop()
		if err != nil {
			return err
		}
		if t.LSN < stop {
			return fmt.Errorf("recovery target %s is before the end of backup %s (LSN %s): a backup restores only to points after it ended; choose a later LSN or an older backup (walship backup list)",
				t, b.ID, b.StopLSN)
		}
	}
	return nil
}

// TargetTimeline resolves --target-timeline for backup b against the archive.
func TargetTimeline(a *catalog.Archive, b catalog.BackupSummary, spec string) (pg.Timeline, error) {
	switch spec {
	case "", "latest":
		n := a.Latest(b.Timeline)
		if _, ok := a.Reach(b, n); !ok {
			return 0, fault.Settingf(SettingTargetTimeline, "the latest timeline in the archive, %d, does not continue from backup %s (timeline %d, LSN %s): it branched off before the backup ended, so PostgreSQL would refuse to follow it. Use %s current, or a backup taken before the branch",
				n, b.ID, b.Timeline, b.StopLSN, SettingTargetTimeline)
		}
		return n, nil
	case "current":
		return b.Timeline, nil
	}
	n, err := strconv.ParseUint(spec, 10, 32)
	if err != nil {
		return 0, fault.Settingf(SettingTargetTimeline, "%s %q: use latest, current or a timeline number", SettingTargetTimeline, spec)
	}
	if _, ok := a.Reach(b, pg.Timeline(n)); !ok {
		return 0, fmt.Errorf("timeline %d does not continue from backup %s (timeline %d, LSN %s): no history file in the archive leads there from it",
			n, b.ID, b.Timeline, b.StopLSN)
	}
	return pg.Timeline(n), nil
}

// CheckWindow checks that target t lies inside window w (computed for the
// chosen backup on the target timeline). Transaction IDs and restore point
// names cannot be placed without reading the WAL, so for them, as for
// "immediate" and "end", it checks only that the archive makes the backup
// consistent.
func CheckWindow(w catalog.Window, b catalog.BackupSummary, t Target) error {
	if err := w.Validate(); err != nil {
		return fmt.Errorf("the recoverable window of backup %s: %w", b.ID, err)
	}
	if !w.Complete {
		return fmt.Errorf("the archive cannot make backup %s consistent: WAL on timeline %d from %s to its stop LSN %s is not all archived (the archive reaches %s, segment %s). Choose another backup (walship backup list)",
			b.ID, b.Timeline, b.StartWAL, b.StopLSN, orNone(w.EndLSN), orNone(w.EndWAL))
	}
	window := func() string {
		return fmt.Sprintf("timeline %d can be recovered from %s (LSN %s, end of backup %s) to %s (LSN %s, end of segment %s)",
			w.Timeline, w.StartTime.Format(time.RFC3339), w.StartLSN, w.Backup, w.EndTime.Format(time.RFC3339), w.EndLSN, w.EndWAL)
	}
	switch t.Kind {
	case TargetTime:
		if !w.EndTime.IsZero() && t.Time.After(w.EndTime) {
			return fmt.Errorf("recovery target %s is after the newest archived WAL: %s", t, window())
		}
	case TargetLSN:
		end, err := w.End()
		if err != nil {
			return err
		}
		if t.LSN > end {
			return fmt.Errorf("recovery target %s is beyond the newest archived WAL: %s", t, window())
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
