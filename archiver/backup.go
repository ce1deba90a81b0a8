package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/internal/storage"
)

// BackupOptions configure one base backup.
type BackupOptions struct {
	PGData         string
	Conn           pg.ConnOptions
	Label          string // default "walship <ID>"
	FastCheckpoint bool
	Jobs           int           // parallel readers/uploaders; default runtime.NumCPU()
	ObjectSize     int64         // decoded bytes per data object; default DefaultObjectSize
	WALTimeout     time.Duration // wait for the backup's WAL to be archived; default 5m
	// RepoKey, when set, authenticates every object with a MAC (see
	// catalog.Protection); the repository must have been created with it.
	RepoKey []byte
	Log     *slog.Logger
	// Progress, when set, is called about once a second while files are
	// copied, with the bytes stored so far and the total.
	Progress func(done, total int64)
	// OnStep, when set, is called as each step begins (StepConnect, ...):
	// what an instance manager reports of a running backup.
	OnStep func(step string)
}

// DefaultObjectSize: big enough for efficient uploads, small enough that
// memory (about (2 × jobs + 4) × this at most, see uploader) stays low.
const DefaultObjectSize = 16 << 20

// The steps of a backup, in order, as BackupOptions.OnStep names them.
const (
	StepConnect  = "connect"  // ask the server who it is; claim the repository and a backup ID
	StepStart    = "start"    // pg_backup_start
	StepCopy     = "copy"     // read, compress and upload the data directory
	StepStop     = "stop"     // pg_control, pg_backup_stop, the backup's WAL range, the last object
	StepWaitWAL  = "wait-wal" // every segment of that range archived
	StepManifest = "manifest" // the manifest: the backup is complete
)

// backupRun is one backup in progress: what each step reads and fills.
type backupRun struct {
	st   storage.Store
	enc  *codec.Encoder
	o    BackupOptions
	conn *pgx.Conn
	m    catalog.Manifest

	files        []catalog.BackupFile // data directory entries but pg_control
	control      catalog.BackupFile   // pg_control's entry, when hasControl
	hasControl   bool
	controlBytes []byte
	up           *uploader
	spans        []segSpan // the backup's WAL, per timeline
}

// Backup takes a base backup of the running server whose data directory is
// o.PGData and stores it in st. It returns the manifest of the complete
// backup; on any error no manifest is written, so the backup is never
// listed as complete.
func Backup(ctx context.Context, st storage.Store, enc *codec.Encoder, o BackupOptions) (_ *catalog.Manifest, err error) {
	r := &backupRun{st: st, enc: enc, o: o.withDefaults()}
	step := func(name string) {
		if r.o.OnStep != nil {
			r.o.OnStep(name)
		}
	}
	step(StepConnect)
	if err := r.connect(ctx); err != nil {
		return nil, err
	}
	// Closing the session also aborts a backup we failed to stop.
	defer r.closeConn(ctx)
	if err := r.claim(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.removeFailed(ctx)
		}
	}()
	for _, s := range []struct {
		name string
		run  func(context.Context) error
	}{
		{StepStart, r.start},
		{StepCopy, r.copyFiles},
		{StepStop, r.stop},
		{StepWaitWAL, r.waitForWAL},
		{StepManifest, r.writeManifest},
	} {
		step(s.name)
		if err := s.run(ctx); err != nil {
			return nil, err
		}
	}
	return &r.m, nil
}

func (o BackupOptions) withDefaults() BackupOptions {
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.ObjectSize <= 0 {
		o.ObjectSize = DefaultObjectSize
	}
	if o.WALTimeout <= 0 {
		o.WALTimeout = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// connect checks the data directory, connects, and learns the server's
// system, version, segment size and role.
func (r *backupRun) connect(ctx context.Context) error {
	o, m := r.o, &r.m
	if _, err := os.Stat(filepath.Join(o.PGData, "PG_VERSION")); err != nil {
		return fault.Settingf(pg.DataDir, "%s is not a PostgreSQL data directory (no PG_VERSION)", o.PGData)
	}
	diskID, err := pg.ControlSystemID(o.PGData)
	if err != nil {
		return err
	}
	if r.conn, err = pg.Connect(ctx, o.Conn); err != nil {
		return err
	}
	var segSize, sysID int64
	err = r.conn.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system()),
		current_setting('server_version_num')::int,
		(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
		pg_is_in_recovery()`).Scan(&sysID, &m.PGVersion, &segSize, &m.FromStandby)
	if err != nil {
		return fmt.Errorf("asking the server about itself: %w", err)
	}
	m.SystemID, m.WALSegmentSize = uint64(sysID), uint32(segSize)
	if m.SystemID != diskID {
		return fault.Mark(fault.Settingf(pg.Connection, "the server you connected to is database system %d, but %s belongs to system %d: point the %s and the %s at the same server",
			m.SystemID, o.PGData, diskID, pg.Connection, pg.DataDir), fault.ErrIdentityMismatch)
	}
	if !pg.ValidSegmentSize(segSize) {
		return fmt.Errorf("server reports wal_segment_size %d", segSize)
	}
	return nil
}

func (r *backupRun) closeConn(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r.conn.Close(cctx)
}

// claim makes sure the repository belongs to the server (claiming a new
// one) and claims a backup ID.
func (r *backupRun) claim(ctx context.Context) error {
	m := &r.m
	id, err := catalog.EnsureIdentity(ctx, r.st, m.SystemID, m.WALSegmentSize, catalog.Protection{Encrypts: len(r.enc.Recipients) > 0, Key: r.o.RepoKey})
	if err != nil {
		return err
	}
	r.enc = id.Encoder(r.enc, catalog.Protection{Key: r.o.RepoKey})
	m.StartTime = time.Now().UTC()
	info, _ := json.Marshal(map[string]any{"start_time": m.StartTime, "system_identifier": strconv.FormatUint(m.SystemID, 10)})
	if m.ID, err = catalog.ClaimBackupID(ctx, r.st, m.StartTime, info); err != nil {
		return err
	}
	m.Label = r.o.Label
	if m.Label == "" {
		m.Label = "walship " + m.ID
	}
	m.Compression, m.Encryption = r.enc.Compression, ""
	if m.Compression == "" {
		m.Compression = "zstd"
	}
	if len(r.enc.Recipients) > 0 {
		m.Encryption = "age"
	}
	return nil
}

// removeFailed removes what a failed backup stored (best effort: a killed
// one cannot, and is listed as incomplete until cleaned up).
func (r *backupRun) removeFailed(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := catalog.DeleteBackup(cctx, r.st, r.m.ID); err != nil {
		r.o.Log.Warn("could not remove the failed backup's objects", "id", r.m.ID, "err", err)
	}
}

func (r *backupRun) start(ctx context.Context) error {
	r.o.Log.Info("backup starting", "id", r.m.ID, "fast_checkpoint", r.o.FastCheckpoint)
	if err := r.conn.QueryRow(ctx, "SELECT pg_backup_start($1, $2)::text", r.m.Label, r.o.FastCheckpoint).Scan(&r.m.StartLSN); err != nil {
		return fmt.Errorf("pg_backup_start: %w", err)
	}
	return nil
}

// copyFiles reads, compresses and uploads every file of the data directory
// but pg_control, which is read last, once every other file is copied, as
// pg_basebackup does: in a backup from a standby its minimum recovery point
// is where the copy becomes consistent, so it must not predate any page the
// other files hold.
func (r *backupRun) copyFiles(ctx context.Context) error {
	files, err := scanDataDir(r.o.PGData)
	if err != nil {
		return err
	}
	r.files, r.control, r.hasControl = withoutFile(files, "global/pg_control")
	sizes := planObjects(r.files, r.o.ObjectSize)
	r.up = newUploader(r.st, r.enc, r.m.ID, r.o.PGData, r.files, sizes)
	r.o.Log.Info("backup copying", "id", r.m.ID, "start_lsn", r.m.StartLSN, "files", len(r.files), "objects", len(sizes), "jobs", r.o.Jobs)
	if r.o.Progress != nil {
		var total int64
		for _, n := range sizes {
			total += n
		}
		stop := progress.Every(r.up.done.Load, total, r.o.Progress)
		defer stop()
	}
	if err := r.up.run(ctx, r.o.Jobs); err != nil {
		return fmt.Errorf("copying the data directory: %w", err)
	}
	return nil
}

// stop reads pg_control, stops the backup and works out its WAL range.
// pg_backup_stop(false) switches to a new segment and returns at once.
// Waiting in it (true) would check the archive only once a second; the
// WAL gate polls the repository itself, which is the check that matters (a
// segment PostgreSQL counts as archived could be missing).
func (r *backupRun) stop(ctx context.Context) error {
	if r.hasControl {
		var err error
		if r.controlBytes, err = os.ReadFile(filepath.Join(r.o.PGData, "global", "pg_control")); err != nil {
			return fmt.Errorf("reading pg_control: %w", err)
		}
	}
	m := &r.m
	var spcmap *string
	err := r.conn.QueryRow(ctx, "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)").Scan(&m.StopLSN, &m.BackupLabel, &spcmap)
	if err != nil {
		return fmt.Errorf("pg_backup_stop: %w", err)
	}
	if spcmap != nil {
		m.TablespaceMap = *spcmap
	}
	if err := fillWAL(m); err != nil {
		return err
	}
	if r.spans, err = backupWAL(ctx, r.conn, r.st, r.o.PGData, m); err != nil {
		return err
	}
	return r.storeLastObject(ctx)
}

func (r *backupRun) waitForWAL(ctx context.Context) error {
	return waitForWAL(ctx, r.st, r.spans, r.m.WALSegmentSize, r.o.WALTimeout, r.o.Log)
}

// writeManifest writes the manifest, which marks the backup complete, if
// the backup still holds its claim.
func (r *backupRun) writeManifest(ctx context.Context) error {
	if err := checkClaim(ctx, r.st, r.m.ID); err != nil {
		return err
	}
	return finishManifest(ctx, r.st, r.enc, &r.m)
}

// storeLastObject stores pg_control, backup_label and tablespace_map, the
// files of the backup that come from its end, in a last object, and fills
// the manifest's file and object lists.
func (r *backupRun) storeLastObject(ctx context.Context) error {
	m, n := &r.m, len(r.up.objects)
	var extra []catalog.BackupFile
	var raw []byte
	if r.hasControl {
		c := r.control
		c.Parts = []catalog.Part{{Object: n, Offset: 0, Length: int64(len(r.controlBytes))}}
		c.Size, c.Checksum = int64(len(r.controlBytes)), codec.Checksum(r.controlBytes)
		extra = append(extra, c)
		raw = append(raw, r.controlBytes...)
	}
	for _, lf := range [][2]string{{"backup_label", m.BackupLabel}, {"tablespace_map", m.TablespaceMap}} {
		if lf[1] == "" {
			continue // no tablespaces
		}
		extra = append(extra, catalog.BackupFile{Path: lf[0], Type: catalog.TypeFile, Size: int64(len(lf[1])), Mode: 0o600,
			MTime: time.Now().UTC(), Checksum: codec.Checksum([]byte(lf[1])),
			Parts: []catalog.Part{{Object: n, Offset: int64(len(raw)), Length: int64(len(lf[1]))}}})
		raw = append(raw, lf[1]...)
	}
	obj, err := storeObject(ctx, r.st, r.enc, catalog.DataKey(m.ID, n), raw)
	if err != nil {
		return err
	}
	m.Objects = append(r.up.objects, obj)
	for i, f := range r.files {
		if f.Type == catalog.TypeFile {
			if r.up.vanished[i].Load() {
				continue // dropped (a table or temp file) while we copied it
			}
			f.Checksum = r.up.hashes.sums[i]
			if f.Size == 0 {
				f.Checksum = codec.Checksum(nil)
			}
		}
		m.Files = append(m.Files, f)
	}
	m.Files = append(m.Files, extra...)
	return nil
}

// finishManifest fills the manifest's totals and stop time and writes it,
// which marks the backup complete.
func finishManifest(ctx context.Context, st storage.Store, enc *codec.Encoder, m *catalog.Manifest) error {
	m.StopTime = time.Now().UTC()
	m.Duration = m.StopTime.Sub(m.StartTime).Seconds()
	m.FileCount, m.ObjectCount = len(m.Files), len(m.Objects)
	for _, f := range m.Files {
		m.Size += f.Size
	}
	for _, ob := range m.Objects {
		m.StoredSize += ob.StoredSize
	}
	m.Status = catalog.StatusComplete
	if err := m.Validate(); err != nil {
		return fmt.Errorf("the manifest is not consistent: %w", err)
	}
	if err := catalog.PutManifest(ctx, st, enc, m); err != nil {
		return fmt.Errorf("writing the manifest: %w", err)
	}
	return nil
}

// checkClaim makes sure backup id still has its started marker. While the
// backup waited for WAL, a cleanup of incomplete backups (by another
// backup or by retention) may have taken it for leftovers and deleted its
// objects; a manifest written then would list a backup without its data.
func checkClaim(ctx context.Context, st storage.Store, id string) error {
	_, err := st.Stat(ctx, catalog.StartedKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("backup %s lost its started marker %s while it waited for WAL: a cleanup of incomplete backups took it for leftovers and may have deleted its data, so it was not recorded. Make the grace for incomplete backups longer than the wait for WAL, then run the backup again",
			id, catalog.StartedKey(id))
	}
	if err != nil {
		return fmt.Errorf("checking that backup %s still has its started marker: %w", id, err)
	}
	return nil
}

var (
	labelStartWAL = regexp.MustCompile(`(?m)^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$`)
	labelTimeline = regexp.MustCompile(`(?m)^START TIMELINE: (\d+)$`)
)

// fillWAL derives the timeline and the first WAL segment of the backup
// from the backup label (backupWAL finds the last).
func fillWAL(m *catalog.Manifest) error {
	sw := labelStartWAL.FindStringSubmatch(m.BackupLabel)
	tl := labelTimeline.FindStringSubmatch(m.BackupLabel)
	if sw == nil || tl == nil {
		return fmt.Errorf("unexpected backup_label from pg_backup_stop:\n%s", m.BackupLabel)
	}
	t, _ := strconv.ParseUint(tl[1], 10, 32)
	m.Timeline, m.StartWAL = pg.Timeline(t), sw[1]
	return nil
}

// withoutFile removes the entry for rel from files, returning it apart.
func withoutFile(files []catalog.BackupFile, rel string) (rest []catalog.BackupFile, f catalog.BackupFile, found bool) {
	for i, e := range files {
		if e.Path == rel {
			rest = append(append(rest, files[:i]...), files[i+1:]...)
			return rest, e, true
		}
	}
	return files, catalog.BackupFile{}, false
}
