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

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
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
}

// DefaultObjectSize: big enough for efficient uploads, small enough that
// memory (about (2 × jobs + 4) × this at most, see uploader) stays low.
const DefaultObjectSize = 16 << 20

// Backup takes a base backup of the running server whose data directory is
// o.PGData and stores it in st. It returns the manifest of the complete
// backup; on any error no manifest is written, so the backup is never
// listed as complete.
func Backup(ctx context.Context, st storage.Store, enc *codec.Encoder, o BackupOptions) (_ *catalog.Manifest, err error) {
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
	if _, err := os.Stat(filepath.Join(o.PGData, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("%s is not a PostgreSQL data directory (no PG_VERSION): set PGDATA or --pgdata", o.PGData)
	}
	diskID, err := pg.ControlSystemID(o.PGData)
	if err != nil {
		return nil, err
	}

	conn, err := pg.Connect(ctx, o.Conn)
	if err != nil {
		return nil, err
	}
	// Closing the session also aborts a backup we failed to stop.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()

	var m catalog.Manifest
	var segSize int64
	var sysID int64
	err = conn.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system()),
		current_setting('server_version_num')::int,
		(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
		pg_is_in_recovery()`).Scan(&sysID, &m.PGVersion, &segSize, &m.FromStandby)
	if err != nil {
		return nil, fmt.Errorf("asking the server about itself: %w", err)
	}
	m.SystemID, m.WALSegmentSize = uint64(sysID), uint32(segSize)
	if m.SystemID != diskID {
		return nil, fmt.Errorf("the server you connected to is database system %d, but %s belongs to system %d: point PGHOST/PGPORT and PGDATA at the same server",
			m.SystemID, o.PGData, diskID)
	}
	if !pg.ValidSegmentSize(segSize) {
		return nil, fmt.Errorf("server reports wal_segment_size %d", segSize)
	}
	id, err := catalog.EnsureIdentity(ctx, st, m.SystemID, m.WALSegmentSize, catalog.Protection{Encrypts: len(enc.Recipients) > 0, Key: o.RepoKey})
	if err != nil {
		return nil, err
	}
	enc = id.Encoder(enc, catalog.Protection{Key: o.RepoKey})

	m.StartTime = time.Now().UTC()
	info, _ := json.Marshal(map[string]any{"start_time": m.StartTime, "system_identifier": strconv.FormatUint(m.SystemID, 10)})
	if m.ID, err = catalog.ClaimBackupID(ctx, st, m.StartTime, info); err != nil {
		return nil, err
	}
	defer func() {
		// A failed backup removes what it stored (best effort: a killed one
		// cannot, and is listed as incomplete until cleaned up).
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if derr := catalog.DeleteBackup(cctx, st, m.ID); derr != nil {
				o.Log.Warn("could not remove the failed backup's objects", "id", m.ID, "err", derr)
			}
		}
	}()
	m.Label = o.Label
	if m.Label == "" {
		m.Label = "walship " + m.ID
	}
	m.Compression, m.Encryption = enc.Compression, ""
	if m.Compression == "" {
		m.Compression = "zstd"
	}
	if len(enc.Recipients) > 0 {
		m.Encryption = "age"
	}
	o.Log.Info("backup starting", "id", m.ID, "fast_checkpoint", o.FastCheckpoint)
	if err := conn.QueryRow(ctx, "SELECT pg_backup_start($1, $2)::text", m.Label, o.FastCheckpoint).Scan(&m.StartLSN); err != nil {
		return nil, fmt.Errorf("pg_backup_start: %w", err)
	}

	files, err := scanDataDir(o.PGData)
	if err != nil {
		return nil, err
	}
	// pg_control is read last, once every other file is copied, as
	// pg_basebackup does: in a backup from a standby its minimum recovery
	// point is where the copy becomes consistent, so it must not predate
	// any page the other files hold.
	files, control, hasControl := withoutFile(files, "global/pg_control")
	sizes := planObjects(files, o.ObjectSize)
	up := newUploader(st, enc, m.ID, o.PGData, files, sizes)
	o.Log.Info("backup copying", "id", m.ID, "start_lsn", m.StartLSN, "files", len(files), "objects", len(sizes), "jobs", o.Jobs)
	if o.Progress != nil {
		var total int64
		for _, n := range sizes {
			total += n
		}
		stop := progress.Every(up.done.Load, total, o.Progress)
		defer stop()
	}
	if err := up.run(ctx, o.Jobs); err != nil {
		return nil, fmt.Errorf("copying the data directory: %w", err)
	}

	var controlBytes []byte
	if hasControl {
		if controlBytes, err = os.ReadFile(filepath.Join(o.PGData, "global", "pg_control")); err != nil {
			return nil, fmt.Errorf("reading pg_control: %w", err)
		}
	}

	// pg_backup_stop(false) switches to a new segment and returns at once.
	// Waiting in it (true) would check the archive only once a second;
	// the gate below polls the repository itself, which is the check that
	// matters (a segment PostgreSQL counts as archived could be missing).
	var spcmap *string
	err = conn.QueryRow(ctx, "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)").Scan(&m.StopLSN, &m.BackupLabel, &spcmap)
	if err != nil {
		return nil, fmt.Errorf("pg_backup_stop: %w", err)
	}
	if spcmap != nil {
		m.TablespaceMap = *spcmap
	}
	if err := fillWAL(&m); err != nil {
		return nil, err
	}
	spans, err := backupWAL(ctx, conn, st, o.PGData, &m)
	if err != nil {
		return nil, err
	}

	// pg_control, backup_label and tablespace_map are files of the backup, in
	// a last object.
	var extra []catalog.BackupFile
	var raw []byte
	if hasControl {
		control.Parts = []catalog.Part{{Object: len(up.objects), Offset: 0, Length: int64(len(controlBytes))}}
		control.Size, control.Checksum = int64(len(controlBytes)), codec.Checksum(controlBytes)
		extra = append(extra, control)
		raw = append(raw, controlBytes...)
	}
	for _, lf := range [][2]string{{"backup_label", m.BackupLabel}, {"tablespace_map", m.TablespaceMap}} {
		if lf[1] == "" {
			continue // no tablespaces
		}
		extra = append(extra, catalog.BackupFile{Path: lf[0], Type: catalog.TypeFile, Size: int64(len(lf[1])), Mode: 0o600,
			MTime: time.Now().UTC(), Checksum: codec.Checksum([]byte(lf[1])),
			Parts: []catalog.Part{{Object: len(up.objects), Offset: int64(len(raw)), Length: int64(len(lf[1]))}}})
		raw = append(raw, lf[1]...)
	}
	obj, err := storeObject(ctx, st, enc, catalog.DataKey(m.ID, len(up.objects)), raw)
	if err != nil {
		return nil, err
	}
	m.Objects = append(up.objects, obj)
	for i, f := range files {
		if f.Type == catalog.TypeFile {
			if up.vanished[i].Load() {
				continue // dropped (a table or temp file) while we copied it
			}
			f.Checksum = up.hashes.sums[i]
			if f.Size == 0 {
				f.Checksum = codec.Checksum(nil)
			}
		}
		m.Files = append(m.Files, f)
	}
	m.Files = append(m.Files, extra...)

	if err := completeBackup(ctx, st, enc, &m, spans, o.WALTimeout, o.Log); err != nil {
		return nil, err
	}
	return &m, nil
}

// completeBackup writes the manifest of m, which marks the backup complete,
// once the repository holds every WAL segment of spans (a restore replays
// them all, and with look-ahead and the agent they arrive out of order)
// and the backup still holds its claim.
func completeBackup(ctx context.Context, st storage.Store, enc *codec.Encoder, m *catalog.Manifest, spans []segSpan, walTimeout time.Duration, log *slog.Logger) error {
	if err := waitForWAL(ctx, st, spans, m.WALSegmentSize, walTimeout, log); err != nil {
		return err
	}
	if err := checkClaim(ctx, st, m.ID); err != nil {
		return err
	}
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
	m.Timeline, m.StartWAL = uint32(t), sw[1]
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
