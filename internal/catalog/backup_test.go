package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

func testStore(t *testing.T) storage.Store {
	st, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestManifestRoundTripAndCatalog(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	start := time.Date(2026, 11, 25, 13, 4, 5, 0, time.UTC)
	id, err := ClaimBackupID(ctx, st, start, []byte("{}"))
	if err != nil || id != "20261125T130405Z" {
		t.Fatalf("claim: %q %v", id, err)
	}
	// Same second: a suffix, never the same ID twice.
	id2, err := ClaimBackupID(ctx, st, start, []byte("{}"))
	if err != nil || id2 != "20261125T130405Z-2" {
		t.Fatalf("second claim: %q %v", id2, err)
	}
	m := &Manifest{
		BackupSummary: BackupSummary{ID: id, Status: StatusComplete, SystemID: 7441234567890123456, PGVersion: 150014,
			WALSegmentSize: 16 << 20, Timeline: 1, StartLSN: "0/2000028", StopLSN: "0/3000100",
			StartWAL: "000000010000000000000002", StopWAL: "000000010000000000000003",
			StartTime: start, StopTime: start.Add(time.Second), Duration: 1, Size: 10, StoredSize: 5, Compression: "zstd"},
		BackupLabel: "START WAL LOCATION: ...",
		Objects:     []BackupObject{{Key: DataKey(id, 0), Size: 10, StoredSize: 5, Checksum: "ab"}},
		Files: []BackupFile{
			{Path: "base", Type: TypeDir, Mode: 0o700, MTime: start},
			{Path: "base/1/1259", Type: TypeFile, Size: 10, Mode: 0o600, MTime: start, Checksum: "cd", Parts: []Part{{Object: 0, Offset: 0, Length: 10}}},
			{Path: "pg_tblspc/16385", Type: TypeLink, Link: "/ts", Tablespace: 16385, MTime: start},
		},
	}
	st.Put(ctx, DataKey(id, 0), []byte("x"), storage.PutOptions{})
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc := &codec.Encoder{Recipients: []age.Recipient{identity.Recipient()}}
	dec := &codec.Decoder{Identities: []age.Identity{identity}}
	if err := PutManifest(ctx, st, enc, m); err != nil {
		t.Fatal(err)
	}
	got, err := LoadManifest(ctx, st, dec, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("manifest round trip:\n got %+v\nwant %+v", got, m)
	}
	// Encrypted like the data: no file name or checksum in clear, and
	// unreadable without the key.
	if raw := readObject(t, st, ManifestKey(id)); bytes.Contains(raw, []byte("base/1/1259")) {
		t.Error("the manifest of an encrypted backup names its files in clear")
	}
	if _, err := LoadManifest(ctx, st, &codec.Decoder{}, id); !errors.Is(err, codec.ErrNoKey) {
		t.Errorf("manifest without the key: %v", err)
	}

	// Listing and showing read the small summary only, which needs no key.
	manifestGets := &storagetest.Rule{Op: storagetest.Get, Match: func(key string) bool { return strings.HasSuffix(key, "/manifest.json") }}
	counting := storagetest.Wrap(st, manifestGets)
	list, incomplete, err := ListBackups(ctx, counting)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !reflect.DeepEqual(list[0], m.BackupSummary) || !reflect.DeepEqual(incomplete, []string{id2}) {
		t.Errorf("list: %+v, incomplete %v", list, incomplete)
	}
	if s, err := LoadSummary(ctx, counting, id); err != nil || !reflect.DeepEqual(s, m.BackupSummary) {
		t.Errorf("summary: %+v, %v", s, err)
	}
	if n := manifestGets.Calls(); n != 0 {
		t.Errorf("listing and showing read the manifest %d times", n)
	}
	if _, err := LoadSummary(ctx, st, id2); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("summary of an incomplete backup: %v", err)
	}

	if _, err := LoadManifest(ctx, st, dec, "../walship.json"); err == nil {
		t.Error("a bad ID was accepted")
	}
	if err := DeleteBackup(ctx, st, "20200101T000000Z"); err == nil {
		t.Error("deleting an unknown backup succeeded")
	}
	if err := DeleteBackup(ctx, st, id); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadManifest(ctx, st, dec, id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("manifest after delete: %v", err)
	}
	if objs, _ := st.List(ctx, BackupPrefix+id+"/"); len(objs) != 0 {
		t.Errorf("objects left after delete: %v", objs)
	}
	if err := DeleteBackup(ctx, st, id2); err != nil {
		t.Fatal(err)
	}
	if list, incomplete, _ := ListBackups(ctx, st); len(list)+len(incomplete) != 0 {
		t.Errorf("after deleting both: %v %v", list, incomplete)
	}
}

// A manifest is a codec object beside its summary.json: plain JSON in its
// place reads as damaged, and a manifest without its summary is named.
func TestManifestIsACodecObject(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	start := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	m := &Manifest{
		BackupSummary: BackupSummary{ID: "20261120T080000Z", Status: StatusComplete, Timeline: 1, StartTime: start, StopTime: start.Add(time.Second)},
		Files:         []BackupFile{{Path: "PG_VERSION", Type: TypeFile, Size: 3, Checksum: "ab"}},
	}
	js, _ := json.Marshal(m)
	if err := st.Put(ctx, ManifestKey(m.ID), js, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadManifest(ctx, st, &codec.Decoder{}, m.ID); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("plain JSON manifest: %v", err)
	}
	if _, err := LoadSummary(ctx, st, m.ID); err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "no summary") {
		t.Errorf("summary of a manifest without summary.json: %v", err)
	}
}

// A manifest altered in the store is reported as damaged, naming the backup.
func TestDamagedManifestIsNamed(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	m := &Manifest{BackupSummary: BackupSummary{ID: "20261120T080000Z", Status: StatusComplete},
		Files: []BackupFile{{Path: "PG_VERSION", Type: TypeFile, Size: 3, Checksum: "ab"}}}
	if err := PutManifest(ctx, st, &codec.Encoder{Compression: "none"}, m); err != nil {
		t.Fatal(err)
	}
	raw := readObject(t, st, ManifestKey(m.ID))
	raw = bytes.Replace(raw, []byte("PG_VERSION"), []byte("PG_VERSIOM"), 1)
	if err := st.Put(ctx, ManifestKey(m.ID), raw, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := LoadManifest(ctx, st, &codec.Decoder{}, m.ID)
	if !errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), "manifest of backup 20261120T080000Z") {
		t.Fatalf("damaged manifest: %v", err)
	}
	t.Logf("message: %v", err)
}

func readObject(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listedObjects counts the objects full listings return (what the calls
// returned, which storagetest rules do not see).
type listedObjects struct {
	storage.Store
	listed atomic.Int64
}

func (c *listedObjects) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	objs, err := c.Store.List(ctx, prefix)
	c.listed.Add(int64(len(objs)))
	return objs, err
}

// Listing backups reads their folders one level deep, never the data
// objects (a large backup has hundreds of thousands); only an incomplete
// backup is listed whole, for its size and last write. A deleted backup's
// empty folders (file://) are no backup.
func TestListingBackupsSkipsTheirData(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	start := time.Date(2026, 11, 25, 13, 4, 5, 0, time.UTC)
	enc := &codec.Encoder{}
	var ids []string
	for i := range 3 {
		id, err := ClaimBackupID(ctx, st, start.Add(time.Duration(i)*time.Hour), []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		for n := range 50 {
			st.Put(ctx, DataKey(id, n), []byte("data"), storage.PutOptions{})
		}
	}
	for _, id := range ids[:2] { // the third stays incomplete
		m := &Manifest{BackupSummary: BackupSummary{ID: id, Status: StatusComplete, WALSegmentSize: 16 << 20,
			StartTime: start, StopTime: start.Add(time.Second)}}
		if err := PutManifest(ctx, st, enc, m); err != nil {
			t.Fatal(err)
		}
	}
	counting := &listedObjects{Store: st}
	list, incomplete, err := ListBackups(ctx, counting)
	if err != nil || len(list) != 2 || !reflect.DeepEqual(incomplete, ids[2:]) {
		t.Fatalf("list: %d complete, incomplete %v, %v", len(list), incomplete, err)
	}
	if n := counting.listed.Load(); n != 0 {
		t.Errorf("listing backups listed %d objects in full", n)
	}
	inc, err := ListIncomplete(ctx, counting)
	if err != nil || len(inc) != 1 || inc[0].ID != ids[2] || inc[0].Objects != 51 || inc[0].Started.IsZero() {
		t.Fatalf("incomplete: %+v, %v", inc, err)
	}
	if n := counting.listed.Load(); n != 51 {
		t.Errorf("listing incomplete backups listed %d objects, want the incomplete one's 51", n)
	}
	if err := DeleteBackup(ctx, st, ids[2]); err != nil {
		t.Fatal(err)
	}
	if list, incomplete, err := ListBackups(ctx, st); err != nil || len(list) != 2 || len(incomplete) != 0 {
		t.Errorf("after deleting the incomplete one: %d complete, incomplete %v, %v", len(list), incomplete, err)
	}
	if inc, err := ListIncomplete(ctx, st); err != nil || len(inc) != 0 {
		t.Errorf("incomplete after its deletion: %+v, %v", inc, err)
	}
}
