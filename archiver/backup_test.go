package archiver

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

func TestSkipRules(t *testing.T) {
	cases := []struct {
		rel  string
		dir  bool
		want skipAction
	}{
		{"PG_VERSION", false, keep},
		{"base/1/1259", false, keep},
		{"global/pg_control", false, keep},
		{"postgresql.conf", false, keep},
		{"postmaster.pid", false, skip},
		{"postmaster.opts", false, skip},
		{"backup_label", false, skip},
		{"tablespace_map", false, skip},
		{"standby.signal", false, skip},
		{"recovery.signal", false, skip},
		{"base/1/backup_label", false, keep}, // only the top-level one is special
		{"pg_wal", true, keep},
		{"pg_wal/archive_status", true, keepDirEmpty},
		{"pg_wal/walship", true, skip},
		{"pg_wal/000000010000000000000001", false, skip},
		{"pg_replslot", true, keepDirEmpty},
		{"pg_dynshmem", true, keepDirEmpty},
		{"pg_notify", true, keepDirEmpty},
		{"pg_serial", true, keepDirEmpty},
		{"pg_snapshots", true, keepDirEmpty},
		{"pg_stat_tmp", true, keepDirEmpty},
		{"pg_subtrans", true, keepDirEmpty},
		{"pg_stat", true, keep},
		{"base/pgsql_tmp", true, skip},
		{"base/16384/pgsql_tmp1234.0", false, skip},
		{"pg_tblspc/16385/PG_15_202209061/pgsql_tmp", true, skip},
		{"base/16384/pg_internal.init", false, skip},
		{"global/pg_internal.init", false, skip},
	}
	for _, c := range cases {
		if got := skipRule(c.rel, c.dir); got != c.want {
			t.Errorf("skipRule(%q, dir=%v) = %d, want %d", c.rel, c.dir, got, c.want)
		}
	}
}

// fakeDataDir writes a small data directory with a tablespace and every
// kind of thing a backup must skip; it returns the paths a backup keeps.
// fakeUploader is an uploader of a fresh fakeDataDir cut into objects of
// objectSize, storing into st.
func fakeUploader(t *testing.T, st storage.Store, objectSize int64) *uploader {
	t.Helper()
	pgdata, _ := fakeDataDir(t)
	files, err := scanDataDir(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	return newUploader(st, &codec.Encoder{}, "20261125T130405Z", pgdata, files, planObjects(files, objectSize))
}

func fakeDataDir(t *testing.T) (pgdata string, want map[string][]byte) {
	root := t.TempDir()
	pgdata = filepath.Join(root, "data")
	tblspc := filepath.Join(root, "ts")
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(16)) // compressible, not trivially
		}
		return b
	}
	want = map[string][]byte{
		"PG_VERSION":        []byte("15\n"),
		"global/pg_control": blob(8192),
		"base/1/1259":       blob(3<<20 + 123), // spans objects
		"base/1/1259_fsm":   blob(24576),
		"base/1/empty":      {},
		"pg_tblspc/16385/PG_15_202209061/16384/16386": blob(70000),
	}
	for i := range 50 {
		want[filepath.ToSlash(filepath.Join("base/16384", "small"+string(rune('a'+i%26))+string(rune('a'+i/26))))] = blob(rng.IntN(3000))
	}
	skipped := []string{
		"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map",
		"pg_wal/000000010000000000000001", "pg_wal/archive_status/000000010000000000000001.done",
		"pg_wal/walship/spool/x", "pg_replslot/slot/state", "pg_stat_tmp/global.stat",
		"pg_subtrans/0000", "base/pgsql_tmp/pgsql_tmp1.0", "base/1/pg_internal.init",
	}
	write := func(rel string, data []byte) {
		p := filepath.Join(pgdata, rel)
		if dir, ok := cutTblspc(rel); ok {
			p = filepath.Join(tblspc, dir)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for rel, data := range want {
		write(rel, data)
	}
	for _, rel := range skipped {
		write(rel, []byte("skip me"))
	}
	os.MkdirAll(filepath.Join(pgdata, "pg_tblspc"), 0o700)
	if err := os.Symlink(tblspc, filepath.Join(pgdata, "pg_tblspc/16385")); err != nil {
		t.Fatal(err)
	}
	return pgdata, want
}

func cutTblspc(rel string) (string, bool) {
	const p = "pg_tblspc/16385/"
	if len(rel) > len(p) && rel[:len(p)] == p {
		return rel[len(p):], true
	}
	return "", false
}

func TestScanDataDir(t *testing.T) {
	pgdata, want := fakeDataDir(t)
	files, err := scanDataDir(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]catalog.BackupFile{}
	for _, f := range files {
		got[f.Path] = f
	}
	for rel, data := range want {
		f, ok := got[rel]
		if !ok || f.Type != catalog.TypeFile || f.Size != int64(len(data)) {
			t.Errorf("%s: got %+v, want a file of %d bytes", rel, f, len(data))
		}
	}
	for _, dir := range []string{"pg_wal", "pg_wal/archive_status", "pg_replslot", "pg_stat_tmp", "pg_subtrans", "base", "base/1"} {
		if got[dir].Type != catalog.TypeDir {
			t.Errorf("%s: want an (empty) directory entry, got %+v", dir, got[dir])
		}
	}
	if l := got["pg_tblspc/16385"]; l.Type != catalog.TypeLink || l.Tablespace != 16385 || l.Link == "" {
		t.Errorf("tablespace link: %+v", l)
	}
	if f := got["pg_tblspc/16385/PG_15_202209061/16384/16386"]; f.Tablespace != 16385 {
		t.Errorf("tablespace file lacks its OID: %+v", f)
	}
	for p, f := range got {
		if f.Type == catalog.TypeDir || f.Type == catalog.TypeLink {
			continue
		}
		if _, ok := want[p]; !ok {
			t.Errorf("%s is in the backup but should be skipped", p)
		}
	}
}

func TestPlanObjects(t *testing.T) {
	const obj = 100
	files := []catalog.BackupFile{
		{Path: "a", Type: catalog.TypeFile, Size: 30},
		{Path: "d", Type: catalog.TypeDir},
		{Path: "b", Type: catalog.TypeFile, Size: 250}, // spans three objects
		{Path: "e", Type: catalog.TypeFile, Size: 0},
		{Path: "c", Type: catalog.TypeFile, Size: 20},
	}
	sizes := planObjects(files, obj)
	if want := []int64{100, 100, 100}; !slices.Equal(sizes, want) {
		t.Fatalf("object sizes %v, want %v", sizes, want)
	}
	wantParts := map[string][]catalog.Part{
		"a": {{Object: 0, Offset: 0, Length: 30}},
		"b": {{Object: 0, Offset: 30, Length: 70}, {Object: 1, Offset: 0, Length: 100}, {Object: 2, Offset: 0, Length: 80}},
		"c": {{Object: 2, Offset: 80, Length: 20}},
	}
	for _, f := range files {
		if !slices.Equal(f.Parts, wantParts[f.Path]) {
			t.Errorf("%s: parts %v, want %v", f.Path, f.Parts, wantParts[f.Path])
		}
	}
	// Many small files share objects: bounded object count.
	var many []catalog.BackupFile
	for range 100000 {
		many = append(many, catalog.BackupFile{Type: catalog.TypeFile, Size: 8192})
	}
	if n := len(planObjects(many, 16<<20)); n != 49 {
		t.Errorf("100000 files of 8 KiB made %d objects, want 49", n)
	}
}

// TestUploadRoundTrip stores a fake data directory with several workers and
// tiny objects, then rebuilds every file from the decoded objects.
func TestUploadRoundTrip(t *testing.T) {
	pgdata, want := fakeDataDir(t)
	st, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	files, err := scanDataDir(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	sizes := planObjects(files, 64<<10)
	if len(sizes) < 10 {
		t.Fatalf("only %d objects; the test wants files spanning objects", len(sizes))
	}
	// The server drops a table while the backup runs.
	if err := os.Remove(filepath.Join(pgdata, "base/1/1259_fsm")); err != nil {
		t.Fatal(err)
	}
	up := newUploader(st, &codec.Encoder{}, "20261125T130405Z", pgdata, files, sizes)
	if err := up.run(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	decoded := make([][]byte, len(up.objects))
	for i, o := range up.objects {
		rc, err := st.Get(context.Background(), o.Key)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := (&codec.Decoder{}).Decode(rc, &buf, o.Key); err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		rc.Close()
		decoded[i] = buf.Bytes()
	}
	for i, f := range files {
		if f.Type != catalog.TypeFile || f.Size == 0 {
			continue
		}
		if gone := up.vanished[i].Load(); gone != (f.Path == "base/1/1259_fsm") {
			t.Errorf("%s: vanished = %v", f.Path, gone)
			continue
		} else if gone {
			continue
		}
		var data []byte
		for _, p := range f.Parts {
			data = append(data, decoded[p.Object][p.Offset:p.Offset+p.Length]...)
		}
		sum := xxh3.Hash128(data).Bytes()
		if !bytes.Equal(data, want[f.Path]) || up.hashes.sums[i] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s does not round-trip (%d bytes, sum %s)", f.Path, len(data), up.hashes.sums[i])
		}
	}
}

func TestFillWAL(t *testing.T) {
	m := &catalog.Manifest{BackupSummary: catalog.BackupSummary{WALSegmentSize: 16 << 20, StopLSN: "1/3000000"}}
	m.BackupLabel = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n" +
		"BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-25 13:04:05 UTC\nLABEL: x\nSTART TIMELINE: 3\n"
	if err := fillWAL(m); err != nil {
		t.Fatal(err)
	}
	if m.Timeline != 3 || m.StartWAL != "000000010000000000000002" {
		t.Errorf("timeline %d start %s", m.Timeline, m.StartWAL)
	}
}

// TestUploadFailureStopsWorkers: a failing store ends the run with its
// error; workers waiting for another's part of a file do not hang.
func TestUploadFailureStopsWorkers(t *testing.T) {
	up := fakeUploader(t, brokenStore(), 64<<10)
	done := make(chan error, 1)
	go func() { done <- up.run(context.Background(), 4) }()
	select {
	case err := <-done:
		if err == nil || err.Error() != "store down" {
			t.Errorf("run: %v, want the store's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run hung after a failure")
	}
}

// TestCompressionGoesOnWhileUploadsWait: an object hands its compression
// slot on once encoded, so slow uploads do not idle the cores, and the
// uploads waiting at once stay bounded (by encodedObjects); when the
// store hangs, cancelling the backup ends it with the cancellation.
func TestCompressionGoesOnWhileUploadsWait(t *testing.T) {
	for jobs, want := range map[int]int{2: 4, 6: 10} { // 6 compressing, 4 more waiting: not 12
		if encodedObjects(jobs) != want {
			t.Errorf("jobs %d: %d encoded objects at once, want %d", jobs, encodedObjects(jobs), want)
		}
		// Every upload hangs until the backup is cancelled.
		stalled := &storagetest.Rule{Op: storagetest.Put, Hang: true}
		up := fakeUploader(t, storagetest.Wrap(nil, stalled), 16<<10)
		if len(up.objects) < want+jobs+1 {
			t.Fatalf("the fake data directory makes %d objects, the test needs %d", len(up.objects), want+jobs+1)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- up.run(ctx, jobs) }()
		deadline := time.Now().Add(20 * time.Second)
		for stalled.Peak() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // would more uploads start?
		if p := stalled.Peak(); p != want {
			t.Errorf("jobs %d: %d uploads waited at once, want %d (more than jobs: compression went on; no more: memory stays bounded)", jobs, p, want)
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("jobs %d: run: %v, want the cancellation", jobs, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("jobs %d: run hung on a stalled store after it was cancelled", jobs)
		}
	}
}

// TestSlowUploadsAllComplete: with uploads slower than compression every
// object is still stored, each exactly once.
func TestSlowUploadsAllComplete(t *testing.T) {
	puts := &storagetest.Rule{Op: storagetest.Put, Delay: 5 * time.Millisecond}
	up := fakeUploader(t, storagetest.Wrap(fileRepo(t), puts), 64<<10)
	if err := up.run(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	for n, o := range up.objects {
		if puts.Count(o.Key) != 1 || o.Key != catalog.DataKey("20261125T130405Z", n) || o.StoredSize == 0 {
			t.Errorf("object %d: key %q stored %d times, %d bytes", n, o.Key, puts.Count(o.Key), o.StoredSize)
		}
	}
	if stored := len(slices.Compact(slices.Sorted(slices.Values(puts.Keys())))); stored != len(up.objects) {
		t.Errorf("%d objects stored, %d planned", stored, len(up.objects))
	}
}

// Unlogged relations keep only their init fork, in the main data directory
// and in tablespaces; logged relations and other files are untouched.
func TestUnloggedRelationsKeepOnlyTheirInitFork(t *testing.T) {
	var files []catalog.BackupFile
	for _, p := range []string{
		"base/5/16384", "base/5/16384.1", "base/5/16384_fsm", "base/5/16384_vm", "base/5/16384_init",
		"base/5/16390", "base/5/16390_fsm", "base/5/PG_VERSION", "base/5/pg_filenode.map",
		"pg_tblspc/16400/PG_15_202209061/5/16401", "pg_tblspc/16400/PG_15_202209061/5/16401_init",
		"base/6/16384", // the same number in another database is another relation
	} {
		files = append(files, catalog.BackupFile{Path: p, Type: catalog.TypeFile})
	}
	files = append(files, catalog.BackupFile{Path: "base/5", Type: catalog.TypeDir})
	var got []string
	for _, f := range withoutUnloggedForks(files) {
		got = append(got, f.Path)
	}
	want := []string{"base/5/16384_init", "base/5/16390", "base/5/16390_fsm", "base/5/PG_VERSION", "base/5/pg_filenode.map",
		"pg_tblspc/16400/PG_15_202209061/5/16401_init", "base/6/16384", "base/5"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v\nwant %v", got, want)
	}
}
