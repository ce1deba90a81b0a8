package catalog

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/walship/walship/internal/storage"
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
	if err := PutManifest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	got, err := LoadManifest(ctx, st, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("manifest round trip:\n got %+v\nwant %+v", got, m)
	}

	list, incomplete, err := ListBackups(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id || !reflect.DeepEqual(incomplete, []string{id2}) {
		t.Errorf("list: %+v, incomplete %v", list, incomplete)
	}

	if _, err := LoadManifest(ctx, st, "../walship.json"); err == nil {
		t.Error("a bad ID was accepted")
	}
	if err := DeleteBackup(ctx, st, "20200101T000000Z"); err == nil {
		t.Error("deleting an unknown backup succeeded")
	}
	if err := DeleteBackup(ctx, st, id); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadManifest(ctx, st, id); !errors.Is(err, storage.ErrNotFound) {
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
