package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// Repository layout of one base backup:
//
//	backups/<ID>/started.json   claims the ID when the backup begins
//	backups/<ID>/data/<n>       codec objects: the data directory's bytes,
//	                            files packed end to end (big files span
//	                            several objects, small ones share one)
//	backups/<ID>/summary.json   the manifest's BackupSummary in plain JSON,
//	                            written just before it: what listing reads
//	backups/<ID>/manifest.json  written last, only once the backup is
//	                            restorable; its absence means "incomplete".
//	                            A codec object (compressed, encrypted with
//	                            the backup's key, checksummed) holding the
//	                            JSON.
const BackupPrefix = "backups/"

// BackupIDFormat makes IDs that sort by start time (UTC).
const BackupIDFormat = "20060102T150405Z"

// StatusComplete is the only status a stored manifest has today: a manifest
// is written only when every WAL segment from the backup's start to its
// stop is in the repository.
const StatusComplete = "complete"

// BackupKey is the key of a file (e.g. "manifest.json") of backup id.
func BackupKey(id, name string) string { return BackupPrefix + id + "/" + name }

// ManifestKey is where a backup's manifest lives.
func ManifestKey(id string) string { return BackupKey(id, "manifest.json") }

// SummaryKey is where a copy of a backup's summary lives. Listing backups
// reads it instead of the manifest, whose file list can be hundreds of MB.
func SummaryKey(id string) string { return BackupKey(id, "summary.json") }

// StartedKey claims a backup ID.
func StartedKey(id string) string { return BackupKey(id, "started.json") }

// DataKey is the key of object n of backup id. Zero-padded so keys sort.
func DataKey(id string, n int) string { return BackupKey(id, fmt.Sprintf("data/%06d", n)) }

// BackupSummary is everything about a backup except its file list; it is
// what `backup list` and `--json` print.
type BackupSummary struct {
	ID             string      `json:"id"`
	Status         string      `json:"status"`
	Label          string      `json:"label"`
	SystemID       uint64      `json:"system_identifier,string"`
	PGVersion      int         `json:"pg_version"` // server_version_num, e.g. 150014
	WALSegmentSize uint32      `json:"wal_segment_size"`
	Timeline       pg.Timeline `json:"timeline"`
	StartLSN       string      `json:"start_lsn"`
	StopLSN        string      `json:"stop_lsn"`
	StartWAL       string      `json:"start_wal"`
	StopWAL        string      `json:"stop_wal"` // the segment holding the stop LSN, on the timeline where the backup stopped
	StartTime      time.Time   `json:"start_time"`
	StopTime       time.Time   `json:"stop_time"`
	Duration       float64     `json:"duration_seconds"`
	Size           int64       `json:"size"`        // original bytes of all files
	StoredSize     int64       `json:"stored_size"` // bytes of all data objects
	FileCount      int         `json:"file_count"`
	ObjectCount    int         `json:"object_count"`
	Compression    string      `json:"compression"`
	Encryption     string      `json:"encryption,omitempty"`
	FromStandby    bool        `json:"from_standby,omitempty"`
}

// Manifest describes a complete base backup.
type Manifest struct {
	BackupSummary
	BackupLabel   string         `json:"backup_label"`             // as returned by pg_backup_stop
	TablespaceMap string         `json:"tablespace_map,omitempty"` // idem
	Objects       []BackupObject `json:"objects"`
	Files         []BackupFile   `json:"files"`
}

// BackupObject is one stored data object.
type BackupObject struct {
	Key        string `json:"key"`         // full key in the repository
	Size       int64  `json:"size"`        // decoded bytes
	StoredSize int64  `json:"stored_size"` // encoded bytes
	Checksum   string `json:"xxh3"`        // of the decoded bytes (codec.Checksum)
}

// File types in a manifest.
const (
	TypeFile = "file"
	TypeDir  = "dir"
	TypeLink = "link" // a tablespace symlink in pg_tblspc
)

// BackupFile is one entry of the data directory (tablespaces included,
// under pg_tblspc/<oid>/).
type BackupFile struct {
	Path       string    `json:"path"` // slash-separated, relative to PGDATA
	Type       string    `json:"type"`
	Size       int64     `json:"size,omitempty"`
	Mode       uint32    `json:"mode"` // permission bits
	MTime      time.Time `json:"mtime"`
	Checksum   string    `json:"xxh3,omitempty"`       // codec.Checksum of the file's bytes
	Link       string    `json:"link,omitempty"`       // symlink target
	Tablespace uint32    `json:"tablespace,omitempty"` // OID, for files in a tablespace
	Parts      []Part    `json:"parts,omitempty"`      // where the bytes are, in order
}

// Part is a run of a file's bytes inside a decoded data object.
type Part struct {
	Object int   `json:"object"` // index into Manifest.Objects
	Offset int64 `json:"offset"` // in the decoded object
	Length int64 `json:"length"`
	// Checksum (codec.Checksum of the part's bytes) is recorded for the
	// parts of files split across objects, so that a restore checks each
	// part as it writes it instead of reading the whole file back. A file
	// of one part has its file checksum; manifests written before this
	// field have none.
	Checksum string `json:"xxh3,omitempty"`
}

// MaxManifestSize bounds what LoadManifest reads (a manifest of a million files is ~300 MB).
const MaxManifestSize = 1 << 30

// LoadManifest reads and verifies the manifest of backup id;
// storage.ErrNotFound when there is no complete backup of that ID.
func LoadManifest(ctx context.Context, st storage.Store, dec *codec.Decoder, id string) (*Manifest, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%q is not a backup ID (like 20261125T130405Z): see walship backup list", id)
	}
	rc, err := st.Get(ctx, ManifestKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("no complete backup %s in %s: see walship backup list: %w", id, st, err)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	m, err := DecodeManifest(rc, dec, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", st, err)
	}
	return m, nil
}

// DecodeManifest reads the stored manifest of backup id from r: a codec
// object (see EncodeManifest).
func DecodeManifest(r io.Reader, dec *codec.Decoder, id string) (*Manifest, error) {
	var buf bytes.Buffer
	if _, err := dec.WithMaxSize(MaxManifestSize).Decode(io.LimitReader(r, MaxManifestSize), &buf, ManifestKey(id)); err != nil {
		if errors.Is(err, codec.ErrCorrupt) {
			return nil, fmt.Errorf("the manifest of backup %s is damaged: %w", id, err)
		}
		return nil, fmt.Errorf("reading the manifest of backup %s: %w", id, err)
	}
	var m Manifest
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		return nil, fmt.Errorf("reading the manifest of backup %s: %w", id, err)
	}
	return &m, nil
}

// EncodeManifest is the stored form of m: its JSON, encoded by enc like the
// backup's data (compressed, encrypted when the backup is, checksummed).
func EncodeManifest(enc *codec.Encoder, m *Manifest) ([]byte, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var obj bytes.Buffer
	h := codec.Header{Name: ManifestKey(m.ID), Size: int64(len(data)), Checksum: codec.Checksum(data)}
	if err := enc.Encode(&obj, h, bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return obj.Bytes(), nil
}

// PutManifest stores m's summary, then m itself (EncodeManifest). It must
// be the last write of a backup: the manifest marks it complete.
func PutManifest(ctx context.Context, st storage.Store, enc *codec.Encoder, m *Manifest) error {
	summary, err := json.Marshal(m.BackupSummary)
	if err != nil {
		return err
	}
	if err := st.Put(ctx, SummaryKey(m.ID), summary, storage.PutOptions{}); err != nil {
		return err
	}
	obj, err := EncodeManifest(enc, m)
	if err != nil {
		return err
	}
	return st.Put(ctx, ManifestKey(m.ID), obj, storage.PutOptions{IfNotExists: true})
}

// LoadSummary reads the summary of complete backup id: its summary.json.
// storage.ErrNotFound when there is no complete backup of that ID.
func LoadSummary(ctx context.Context, st storage.Store, id string) (BackupSummary, error) {
	if !validID(id) {
		return BackupSummary{}, fmt.Errorf("%q is not a backup ID (like 20261125T130405Z): see walship backup list", id)
	}
	// The manifest, not the summary, says the backup is complete.
	if _, err := st.Stat(ctx, ManifestKey(id)); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return BackupSummary{}, fmt.Errorf("no complete backup %s in %s: see walship backup list: %w", id, st, err)
		}
		return BackupSummary{}, err
	}
	return loadSummary(ctx, st, id)
}

// loadSummary reads the summary of a backup known to be complete.
func loadSummary(ctx context.Context, st storage.Store, id string) (BackupSummary, error) {
	rc, err := st.Get(ctx, SummaryKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		// PutManifest writes the summary first and DeleteBackup removes the
		// manifest first: a complete backup always has one.
		return BackupSummary{}, fmt.Errorf("backup %s in %s has a manifest but no summary (%s)", id, st, SummaryKey(id))
	}
	if err != nil {
		return BackupSummary{}, err
	}
	defer rc.Close()
	var s BackupSummary
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&s); err != nil {
		return BackupSummary{}, fmt.Errorf("reading the summary of backup %s: %w", id, err)
	}
	if s.ID != id {
		return BackupSummary{}, fmt.Errorf("the summary of backup %s in %s names backup %q", id, st, s.ID)
	}
	return s, nil
}

// validID keeps an ID to one path segment of the expected shape.
func validID(id string) bool {
	base, _, _ := strings.Cut(id, "-")
	_, err := time.Parse(BackupIDFormat, base)
	return err == nil && !strings.ContainsAny(id, "/\\") && id != "" && len(id) < 64
}

// ClaimBackupID reserves an ID for a backup starting at t: the timestamp,
// or the timestamp with -2, -3, ... when taken. The claim is a
// create-if-absent write, so two backups in the same second get two IDs.
func ClaimBackupID(ctx context.Context, st storage.Store, t time.Time, info []byte) (string, error) {
	base := t.UTC().Format(BackupIDFormat)
	for i := 1; i < 100; i++ {
		id := base
		if i > 1 {
			id = fmt.Sprintf("%s-%d", base, i)
		}
		err := st.Put(ctx, StartedKey(id), info, storage.PutOptions{IfNotExists: true})
		if errors.Is(err, storage.ErrExists) {
			continue
		}
		return id, err
	}
	return "", fmt.Errorf("no free backup ID for %s in %s", base, st)
}

// ListBackups returns the complete backups, oldest first, and the backups
// that were started but never completed (killed or failed; their objects
// wait for cleanup). It reads the backups' folders one level deep, never
// their data objects: a repository of large backups holds millions.
func ListBackups(ctx context.Context, st storage.Store) (complete []BackupSummary, incomplete []string, err error) {
	folders, err := readBackupFolders(ctx, st, true)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range folders {
		switch {
		case f.complete:
			complete = append(complete, f.summary)
		case f.started:
			incomplete = append(incomplete, f.id)
		}
	}
	// Real start times, not names, order backups.
	sort.SliceStable(complete, func(i, j int) bool { return complete[i].StartTime.Before(complete[j].StartTime) })
	return complete, incomplete, nil
}

// backupFolder is what the top of one backups/<ID>/ folder shows: complete
// when it holds the manifest, started when it holds the claim. Neither:
// the backup was deleted (the claim goes last, see DeleteBackup), and only
// empty folders of a file:// repository remain.
type backupFolder struct {
	id                string
	complete, started bool
	summary           BackupSummary // of a complete backup, when asked for
}

// backupsAtOnce is how many backup folders are read concurrently: two
// small requests each, where a store answers in tens of milliseconds and a
// repository may keep hundreds of backups.
const backupsAtOnce = 8

// readBackupFolders reads every folder under backups/, in order, and with
// summaries the summary of each complete backup.
func readBackupFolders(ctx context.Context, st storage.Store, summaries bool) ([]backupFolder, error) {
	_, dirs, err := st.ListDir(ctx, BackupPrefix)
	if err != nil {
		return nil, err
	}
	folders := make([]backupFolder, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(backupsAtOnce)
	for i, d := range dirs {
		f := &folders[i]
		f.id = strings.TrimSuffix(strings.TrimPrefix(d, BackupPrefix), "/")
		g.Go(func() error {
			objs, _, err := st.ListDir(gctx, d)
			if err != nil {
				return err
			}
			for _, o := range objs {
				f.complete = f.complete || o.Key == ManifestKey(f.id)
				f.started = f.started || o.Key == StartedKey(f.id)
			}
			if f.complete && summaries {
				f.summary, err = loadSummary(gctx, st, f.id)
			}
			return err
		})
	}
	return folders, g.Wait()
}

// DeleteBackup removes backup id: the manifest first, so that a deletion
// cut short leaves an incomplete backup and never a complete one that
// misses objects; then every other object of the backup.
func DeleteBackup(ctx context.Context, st storage.Store, id string) error {
	if !validID(id) {
		return fmt.Errorf("%q is not a backup ID (like 20261125T130405Z): see walship backup list", id)
	}
	objs, err := st.List(ctx, BackupPrefix+id+"/")
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("no backup %s in %s: see walship backup list", id, st)
	}
	if err := st.Delete(ctx, ManifestKey(id)); err != nil {
		return err
	}
	var rest []string
	for _, o := range objs {
		if o.Key != ManifestKey(id) && o.Key != StartedKey(id) {
			rest = append(rest, o.Key)
		}
	}
	if err := storage.DeleteAll(ctx, st, rest); err != nil {
		return err
	}
	// The claim goes last: until then the leftovers are listed as incomplete.
	return st.Delete(ctx, StartedKey(id))
}

// IncompleteBackup is a backup without a manifest: still running, or
// killed or failed and waiting for cleanup.
type IncompleteBackup struct {
	ID        string    `json:"id"`
	Started   time.Time `json:"started,omitempty"` // when the store wrote started.json (its clock)
	LastWrite time.Time `json:"last_write"`        // newest object of the backup
	Objects   int       `json:"objects"`
	Size      int64     `json:"size"` // stored bytes
}

// ListIncomplete returns the backups without a manifest, with the time of
// their newest object: a running backup keeps writing, so that time (not
// the start) tells a live backup from leftovers.
func ListIncomplete(ctx context.Context, st storage.Store) ([]IncompleteBackup, error) {
	folders, err := readBackupFolders(ctx, st, false)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, f := range folders {
		if f.started && !f.complete {
			ids = append(ids, f.id)
		}
	}
	return DescribeIncomplete(ctx, st, ids)
}

// DescribeIncomplete lists the incomplete backups ids (from ListBackups)
// whole, for their size and newest object. One that completed meanwhile,
// or is gone, is left out.
func DescribeIncomplete(ctx context.Context, st storage.Store, ids []string) ([]IncompleteBackup, error) {
	var out []IncompleteBackup
	for _, id := range ids {
		if !validID(id) {
			continue
		}
		objs, err := st.List(ctx, BackupPrefix+id+"/")
		if err != nil {
			return nil, err
		}
		b := IncompleteBackup{ID: id}
		for _, o := range objs {
			if o.Key == ManifestKey(id) {
				b.Objects = 0 // completed while we listed
				break
			}
			if o.Key == StartedKey(id) {
				b.Started = o.ModTime.UTC()
			}
			b.Objects++
			b.Size += o.Size
			if o.ModTime.After(b.LastWrite) {
				b.LastWrite = o.ModTime.UTC()
			}
		}
		if b.Objects > 0 {
			out = append(out, b)
		}
	}
	return out, nil
}
