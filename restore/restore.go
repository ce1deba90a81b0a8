package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// Options configure one restore.
type Options struct {
	PGData   string
	BackupID string // "" or "latest": the newest backup that ends before the target
	Target   Target
	// Tablespaces relocates tablespaces: OID -> new location (absolute).
	Tablespaces map[uint32]string
	// DeleteExisting allows a non-empty PGData: its contents are removed,
	// once every check passed, before the backup is laid down.
	DeleteExisting bool
	Jobs           int // objects downloaded at once; default DefaultJobs()
	// RestoreCommand goes into postgresql.auto.conf as restore_command,
	// with --system-id and the backup's system identifier added, so that
	// wal-fetch checks the repository holds the WAL of that system.
	RestoreCommand string
	// Archive says what becomes of the source's WAL archiving in the
	// restored configuration; the zero value is ArchiveOff.
	Archive ArchiveMode
	Log     *slog.Logger
	// Progress, when set, is called about once a second while objects
	// download, with the decoded bytes of the objects done and of all.
	Progress func(done, total int64)
}

// Result says what Restore laid down.
type Result struct {
	Backup   catalog.BackupSummary `json:"backup"`
	Window   catalog.Window        `json:"window"`
	Timeline pg.Timeline           `json:"timeline"` // the timeline recovery follows
	Files    int                   `json:"files"`
	Bytes    int64                 `json:"bytes"`
	Objects  int                   `json:"objects"`
	Settings [][2]string           `json:"settings"` // what went into postgresql.auto.conf
	Archive  ArchiveMode           `json:"archive_mode"`
}

// ArchiveMode is what a restore does with the source's WAL archiving.
type ArchiveMode string

const (
	// ArchiveOff turns archiving off in the restored configuration
	// (archive_mode = 'off' in postgresql.auto.conf, which wins over
	// postgresql.conf and its includes) and empties recovery_end_command
	// and archive_cleanup_command. A copy restored to test or to look at
	// the past, started with the source's environment, would otherwise
	// promote and archive its new timeline into the source's repository,
	// where recovery following the latest timeline would then replay it.
	ArchiveOff ArchiveMode = "off"
	// ArchivePreserve keeps the source's archiving settings: what a
	// replica or a real disaster recovery, which replaces the source, wants.
	ArchivePreserve ArchiveMode = "preserve"
)

// archiveSettings are the settings ArchiveOff writes.
var archiveSettings = [][2]string{{"archive_mode", "off"}, {"recovery_end_command", ""}, {"archive_cleanup_command", ""}}

func checkArchiveMode(a ArchiveMode) (ArchiveMode, error) {
	switch a {
	case "", ArchiveOff:
		return ArchiveOff, nil
	case ArchivePreserve:
		return a, nil
	}
	return "", fmt.Errorf("archive mode %q: use off (the restored server does not archive) or preserve (it archives as the source did)", a)
}

// recoverySettings are what goes into postgresql.auto.conf: restore_command
// naming the backup's system, the target, and archiving turned off unless
// it is preserved.
func recoverySettings(o Options, m *catalog.Manifest) [][2]string {
	cmd := o.RestoreCommand
	if cmd != "" && m.SystemID != 0 {
		cmd += " --system-id " + strconv.FormatUint(m.SystemID, 10)
	}
	settings := append([][2]string{{"restore_command", cmd}}, o.Target.Settings()...)
	if o.Archive == ArchiveOff {
		settings = append(settings, archiveSettings...)
	}
	return settings
}

// DefaultJobs is two objects per core: a worker spends much of its time
// waiting for the store's bytes, and holds only a decoder's buffers (about
// 4 MB). Measured on 2 busy cores restoring 1.6 GB of random data from
// MinIO: 4 jobs took 4.5-6.0 s where 2 took 6.1-8.5 s.
func DefaultJobs() int { return 2 * runtime.NumCPU() }

// Restore lays down a base backup in o.PGData with the settings for
// point-in-time recovery to o.Target. Every check (target, backup, recoverable
// window, data directory, tablespace locations) happens before the first
// write. The files are written and verified against the manifest before
// backup_label, tablespace_map and recovery.signal are written; on any
// failure everything written is removed, so a failed restore never leaves a
// directory that looks restorable.
func Restore(ctx context.Context, st storage.Store, dec *codec.Decoder, o Options) (*Result, error) {
	if o.Jobs <= 0 {
		o.Jobs = DefaultJobs()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	archive, err := checkArchiveMode(o.Archive)
	if err != nil {
		return nil, err
	}
	o.Archive = archive
	pgdata, err := filepath.Abs(o.PGData)
	if err != nil {
		return nil, err
	}
	o.PGData = pgdata
	if err := checkTarget(o.PGData, "data directory", o.DeleteExisting, SettingDeleteExisting, "%s replaces what is there"); err != nil {
		return nil, err
	}

	list, _, err := catalog.ListBackups(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("listing backups in %s: %w", st, err)
	}
	b, err := ChooseBackup(list, o.BackupID, o.Target)
	if err != nil {
		return nil, err
	}
	m, err := catalog.LoadManifest(ctx, st, dec, b.ID)
	if err != nil {
		return nil, err
	}
	if err := checkManifest(m); err != nil {
		return nil, err
	}
	if err := checkKey(m, dec); err != nil {
		return nil, err
	}
	arch, err := catalog.LoadArchive(ctx, st, dec, m.WALSegmentSize)
	if err != nil {
		return nil, err
	}
	tli, err := TargetTimeline(arch, b, o.Target.Timeline)
	if err != nil {
		return nil, err
	}
	w, _ := arch.Reach(b, tli)
	if err := CheckWindow(w, b, o.Target); err != nil {
		return nil, err
	}
	spaces, err := planTablespaces(m, o.Tablespaces, o.PGData)
	if err != nil {
		return nil, err
	}
	for _, sp := range spaces {
		if err := checkTarget(sp.location, fmt.Sprintf("location of tablespace %d", sp.oid), false,
			SettingTablespaceLocation, "restore the tablespace elsewhere with %s"); err != nil {
			return nil, err
		}
	}
	settings := recoverySettings(o, m)
	if err := checkSettings(settings); err != nil {
		return nil, err
	}
	o.Log.Info("restoring", "backup", b.ID, "target", o.Target.String(), "timeline", tli, "files", len(m.Files), "objects", len(m.Objects))

	// Every check passed: from here on, writes, undone on failure.
	lay := &layout{pgdata: o.PGData, m: m, spaces: spaces, log: o.Log}
	res := &Result{Backup: b, Window: w, Timeline: tli, Objects: len(m.Objects), Settings: settings, Archive: o.Archive}
	if err := lay.run(ctx, st, dec, o, res); err != nil {
		lay.undo()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted; what it had written is removed: %w", err)
		}
		return nil, err
	}
	return res, nil
}

// checkTarget requires dir to be missing or an empty directory we may
// write to (or, with deleteExisting, any directory no server runs on). A
// directory that is not empty is refused with hint, which names the
// setting that would change that (a "%s" for it).
func checkTarget(dir, what string, deleteExisting bool, setting fault.Setting, hint string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s %s: give an absolute path", what, dir)
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		top := topMissing(dir)
		parent := filepath.Dir(top)
		if err := syscall.Access(parent, 2|1); err != nil { // W_OK|X_OK
			return fmt.Errorf("%s %s does not exist and cannot be created in %s: %v", what, dir, parent, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s is not a directory", what, dir)
	}
	if err := syscall.Access(dir, 2|1); err != nil {
		return fmt.Errorf("%s %s is not writable by this user: %v (run walship restore as the user PostgreSQL runs as)", what, dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	if len(ents) == 0 {
		return nil
	}
	if !deleteExisting {
		return fault.Settingf(setting, "%s %s is not empty (it holds %s%s): restore needs an empty or missing directory; "+hint,
			what, dir, ents[0].Name(), map[bool]string{true: fmt.Sprintf(" and %d more", len(ents)-1)}[len(ents) > 1], setting)
	}
	if why := runningServer(dir); why != "" {
		return fmt.Errorf("%s %s belongs to a running PostgreSQL server (%s): stop it first", what, dir, why)
	}
	return nil
}

// topMissing is the outermost directory of dir's path that does not exist.
func topMissing(dir string) string {
	for {
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		if _, err := os.Lstat(parent); err == nil {
			return dir
		}
		dir = parent
	}
}

// tablespace is one tablespace to lay down.
type tablespace struct {
	oid      uint32
	link     string // pg_tblspc/<oid>
	location string
	fd       int // of location, while the layout writes
}

// planTablespaces maps each tablespace of the backup to its location: the
// original one, or the one --tablespace gives. Locations must be distinct
// and apart from the data directory: restore writes into each one and, on
// failure, empties it.
func planTablespaces(m *catalog.Manifest, relocate map[uint32]string, pgdata string) ([]tablespace, error) {
	var out []tablespace
	known := map[uint32]bool{}
	overlap := func(a, b string) bool {
		return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
	}
	for _, f := range m.Files {
		if f.Type != catalog.TypeLink {
			continue
		}
		known[f.Tablespace] = true
		loc := f.Link
		if r, ok := relocate[f.Tablespace]; ok {
			loc = r
		}
		if !filepath.IsAbs(loc) {
			return nil, fmt.Errorf("tablespace %d: location %q is not an absolute path", f.Tablespace, loc)
		}
		loc = filepath.Clean(loc)
		if overlap(loc, pgdata) {
			return nil, fault.Settingf(SettingTablespaceLocation, "tablespace %d: location %s overlaps the data directory %s: restore it elsewhere with %s outside it",
				f.Tablespace, loc, pgdata, SettingTablespaceLocation)
		}
		for _, o := range out {
			if overlap(loc, o.location) {
				return nil, fault.Settingf(SettingTablespaceLocation, "tablespaces %d and %d would share %s: restore one elsewhere with %s",
					o.oid, f.Tablespace, loc, SettingTablespaceLocation)
			}
		}
		out = append(out, tablespace{oid: f.Tablespace, link: f.Path, location: loc, fd: -1})
	}
	for oid := range relocate {
		if !known[oid] {
			var have []string
			for k := range known {
				have = append(have, strconv.FormatUint(uint64(k), 10))
			}
			sort.Strings(have)
			return nil, fault.Settingf(SettingTablespaceLocation, "%s for tablespace %d: backup %s has no tablespace with that OID (it has: %s)",
				SettingTablespaceLocation, oid, m.ID, strings.Join(append(have, "none")[:max(len(have), 1)], ", "))
		}
	}
	return out, nil
}

// checkKey refuses an encrypted backup up front when no key is configured,
// instead of on its first object.
func checkKey(m *catalog.Manifest, dec *codec.Decoder) error {
	if m.Encryption != "" && len(dec.Identities) == 0 {
		return fmt.Errorf("backup %s is encrypted (%s): %w", m.ID, m.Encryption, codec.ErrNoKey)
	}
	return nil
}
