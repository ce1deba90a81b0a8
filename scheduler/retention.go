// Package scheduler decides what is due and what may be deleted: retention
// of base backups and WAL, and the cleanup of incomplete backups.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// DefaultIncompleteGrace is how long a backup without a manifest may go
// without writing before it counts as leftovers: a live backup writes an
// object every few seconds, and waits at most its --wal-timeout (5 minutes
// by default) for its last WAL segment.
const DefaultIncompleteGrace = time.Hour

// The settings retention's messages name (see fault.Setting).
const (
	SettingKeep            fault.Setting = "keep count"      // Policy.Keep
	SettingRecoveryWindow  fault.Setting = "recovery window" // Policy.Window
	SettingIncompleteGrace fault.Setting = "grace period of incomplete backups"
)

// Policy is one retention policy: Keep or Window, never both.
type Policy struct {
	Keep            int           // keep the Keep newest complete backups
	Window          time.Duration // keep what recovery to any point in [Now-Window, Now] needs
	IncompleteGrace time.Duration // incomplete backups idle longer than this are deleted
	Now             time.Time
}

// Check rejects a policy that is not exactly one valid rule.
func (p Policy) Check() error {
	switch {
	case p.Keep != 0 && p.Window != 0:
		return fault.Settingf(SettingKeep, "give one retention policy, not both: %s N or %s D", SettingKeep, SettingRecoveryWindow)
	case p.Keep == 0 && p.Window == 0:
		return fault.Settingf(SettingKeep, "no retention policy: give %s N (keep the N newest backups) or %s D (e.g. 30d)", SettingKeep, SettingRecoveryWindow)
	case p.Keep < 0:
		return fault.Settingf(SettingKeep, "%s %d: keep at least 1 backup", SettingKeep, p.Keep)
	case p.Window < 0:
		return fault.Settingf(SettingRecoveryWindow, "%s %s: the window must be positive", SettingRecoveryWindow, p.Window)
	case p.IncompleteGrace <= 0:
		return graceError(p.IncompleteGrace)
	}
	return nil
}

func (p Policy) String() string {
	if p.Keep > 0 {
		return fmt.Sprintf("keep the %d newest backups", p.Keep)
	}
	return fmt.Sprintf("recovery window of %s", FormatWindow(p.Window))
}

var windowRe = regexp.MustCompile(`^(\d+)([hdwm])$`)

// Month is the length of one month of a recovery window: 31 days, so that
// "6m" never keeps less than six calendar months.
const Month = 31 * 24 * time.Hour

// ParseWindow reads a recovery window as a Cluster's retentionPolicy writes
// it: 30d (days), 4w (weeks), 6m (months of 31 days), or 12h (hours). A Go
// duration with more than one unit or in seconds (1h30m, 3600s) is read
// too; a bare number of minutes is not, since "6m" means months.
func ParseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if m := windowRe.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n > 0 && n < 100000 {
			unit := map[string]time.Duration{"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "m": Month}[m[2]]
			return time.Duration(n) * unit, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("%q: use a positive number of days (30d), weeks (4w), months (6m) or hours (12h)", s)
}

// FormatWindow prints a window in days when it is whole days.
func FormatWindow(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Plan is what a retention run deletes and keeps.
type Plan struct {
	Policy         string                     `json:"policy"`
	Cutoff         *time.Time                 `json:"cutoff,omitempty"` // Now - Window
	Kept           []catalog.BackupSummary    `json:"kept_backups"`
	Expired        []catalog.BackupSummary    `json:"expired_backups"`
	Incomplete     []catalog.IncompleteBackup `json:"incomplete_deleted"`
	IncompleteKept []catalog.IncompleteBackup `json:"incomplete_kept"` // within the grace period: may be running
	WAL            []string                   `json:"wal_deleted"`     // object keys, oldest first
	WALKept        int                        `json:"wal_kept"`
	Warnings       []string                   `json:"warnings"`
	Windows        []catalog.Window           `json:"recoverable_windows"` // after the deletion
}

// PlanRetention decides, without deleting anything, what p expires.
//
// Backups are ordered by their stop time from the manifests. The kept
// backups are the p.Keep newest, or for a window the newest that ended at
// or before Now-Window plus every newer one; the newest backup is always
// kept. A WAL file is kept when some kept backup may replay it: it is on
// that backup's timeline or on a timeline descending from it (by the
// history files) at or after the backup's start segment. History files are
// always kept; WAL on a timeline whose history cannot be read is kept, and
// so is WAL stored since a backup that may still be running began.
func PlanRetention(ctx context.Context, st storage.Store, dec *codec.Decoder, p Policy) (*Plan, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	list, incomplete, err := catalog.ListBackups(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("listing backups in %s: %w", st, err)
	}
	inc, err := catalog.DescribeIncomplete(ctx, st, incomplete)
	if err != nil {
		return nil, fmt.Errorf("listing backups in %s: %w", st, err)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].StopTime.Before(list[j].StopTime) })
	plan := &Plan{Policy: p.String(), Kept: []catalog.BackupSummary{}, Expired: []catalog.BackupSummary{},
		Incomplete: []catalog.IncompleteBackup{}, IncompleteKept: []catalog.IncompleteBackup{}, WAL: []string{}, Warnings: []string{}}
	first := keepFrom(list, p)
	if p.Window > 0 {
		cut := p.Now.Add(-p.Window).UTC()
		plan.Cutoff = &cut
	}
	plan.Expired, plan.Kept = append(plan.Expired, list[:first]...), append(plan.Kept, list[first:]...)

	planIncomplete(inc, p, plan)
	segSize := catalog.SegmentSize(nil, list)
	// One pass over the archive, a folder at a time: each object is kept
	// or listed for deletion as it comes, and only the kept ones make up
	// the archive that remains.
	after := catalog.NewArchive(segSize, nil)
	unknown := map[pg.Timeline]bool{}
	running := runningSince(plan.IncompleteKept)
	arch, err := catalog.WalkArchive(ctx, st, dec, segSize, func(arch *catalog.Archive, o storage.ObjectInfo) error {
		keep, why := keepWAL(o.Key, plan.Kept, arch)
		if !running.IsZero() && !o.ModTime.Before(running) {
			keep, why = true, 0
		}
		if why != 0 && !unknown[why] {
			unknown[why] = true
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("the history of timeline %d cannot be read (encrypted without the key, or missing): its WAL is kept", why))
		}
		if keep {
			after.Add(o)
			plan.WALKept++
		} else {
			plan.WAL = append(plan.WAL, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	after.History = arch.History
	plan.Windows = after.Windows(byStart(plan.Kept))
	if plan.Windows == nil {
		plan.Windows = []catalog.Window{}
	}
	return plan, nil
}

// runningSince is the earliest time a backup that may still be running
// began, less a margin for the store's one-second timestamps; zero when
// there is none. Its start segment is unknown until its manifest is
// written, but no WAL it needs was stored before it began (the store's
// clock dates both), so WAL stored since then is kept.
func runningSince(inc []catalog.IncompleteBackup) time.Time {
	var t time.Time
	for _, b := range inc {
		s := b.Started
		if s.IsZero() {
			s = b.LastWrite
		}
		if t.IsZero() || s.Before(t) {
			t = s
		}
	}
	if t.IsZero() {
		return t
	}
	return t.Add(-time.Minute)
}

// keepFrom is the index in list (by stop time) of the oldest backup to keep.
func keepFrom(list []catalog.BackupSummary, p Policy) int {
	if len(list) == 0 {
		return 0
	}
	if p.Keep > 0 {
		return max(0, len(list)-p.Keep)
	}
	cut := p.Now.Add(-p.Window)
	first := 0 // no backup ended before the window began: all are needed
	for i, b := range list {
		if !b.StopTime.After(cut) {
			first = i
		}
	}
	return min(first, len(list)-1)
}

// byStart orders backups by start time, as Archive.Windows expects.
func byStart(list []catalog.BackupSummary) []catalog.BackupSummary {
	out := append([]catalog.BackupSummary(nil), list...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartTime.Before(out[j].StartTime) })
	return out
}

// keepWAL decides one object under wal/. unknownTLI names a timeline whose
// history is unreadable when that alone kept the object.
func keepWAL(key string, kept []catalog.BackupSummary, arch *catalog.Archive) (keep bool, unknownTLI pg.Timeline) {
	name := key[strings.LastIndexByte(key, '/')+1:]
	switch pg.KindOf(name) {
	case pg.KindSegment, pg.KindPartial, pg.KindBackup:
	default:
		return true, 0 // history files, and anything not ours
	}
	if len(kept) == 0 {
		return true, 0 // no backup: nothing tells what is needed
	}
	s, _ := pg.ParseSegmentName(name)
	n := s.No(arch.SegSize)
	for _, b := range kept {
		start, err := b.FirstSegment()
		if err != nil {
			return true, 0
		}
		if n >= start.No(arch.SegSize) && (s.Timeline == b.Timeline || descends(arch, s.Timeline, b.Timeline)) {
			return true, 0
		}
	}
	if s.Timeline > 1 && len(arch.History[s.Timeline]) == 0 {
		return true, s.Timeline
	}
	return false, 0
}

// descends reports whether timeline tli has ancestor among its history.
func descends(arch *catalog.Archive, tli, ancestor pg.Timeline) bool {
	for _, h := range arch.History[tli] {
		if h.Parent == ancestor {
			return true
		}
	}
	return false
}

// planIncomplete sorts the incomplete backups into leftovers (idle longer
// than the grace period) and possibly running ones.
func planIncomplete(inc []catalog.IncompleteBackup, p Policy, plan *Plan) {
	for _, b := range inc {
		if p.Now.Sub(b.LastWrite) > p.IncompleteGrace {
			plan.Incomplete = append(plan.Incomplete, b)
		} else {
			plan.IncompleteKept = append(plan.IncompleteKept, b)
		}
	}
}

// Apply deletes what plan says: expired backups first (each manifest
// first, so an interrupted run never leaves a listed backup without its
// objects or WAL), then their WAL, then the leftovers of incomplete backups.
func Apply(ctx context.Context, st storage.Store, plan *Plan, log *slog.Logger) error {
	for _, b := range plan.Expired {
		log.Info("deleting backup", "id", b.ID)
		if err := catalog.DeleteBackup(ctx, st, b.ID); err != nil {
			return fmt.Errorf("deleting backup %s: %w", b.ID, err)
		}
	}
	if len(plan.WAL) > 0 {
		log.Info("deleting WAL", "files", len(plan.WAL), "first", plan.WAL[0], "last", plan.WAL[len(plan.WAL)-1])
		if err := storage.DeleteAll(ctx, st, plan.WAL); err != nil {
			return fmt.Errorf("deleting expired WAL: %w", err)
		}
	}
	for _, b := range plan.Incomplete {
		log.Info("deleting incomplete backup", "id", b.ID)
		if err := catalog.DeleteBackup(ctx, st, b.ID); err != nil {
			return fmt.Errorf("deleting incomplete backup %s: %w", b.ID, err)
		}
	}
	return nil
}

func graceError(grace time.Duration) error {
	return fault.Settingf(SettingIncompleteGrace, "%s %s: must be positive, or a running backup would be deleted", SettingIncompleteGrace, grace)
}

// CleanIncomplete deletes the leftovers of incomplete backups that wrote
// nothing for longer than grace (killed or failed backups), and returns them.
func CleanIncomplete(ctx context.Context, st storage.Store, grace time.Duration, now time.Time) ([]catalog.IncompleteBackup, error) {
	if grace <= 0 {
		return nil, graceError(grace)
	}
	inc, err := catalog.ListIncomplete(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("listing backups in %s: %w", st, err)
	}
	plan := &Plan{}
	planIncomplete(inc, Policy{IncompleteGrace: grace, Now: now}, plan)
	for i, b := range plan.Incomplete {
		if err := catalog.DeleteBackup(ctx, st, b.ID); err != nil {
			return plan.Incomplete[:i], fmt.Errorf("deleting incomplete backup %s: %w", b.ID, err)
		}
	}
	return plan.Incomplete, nil
}
