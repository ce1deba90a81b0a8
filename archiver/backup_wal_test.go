package archiver

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

const walSegSize = 16 << 20

func fileRepo(t *testing.T) storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// archive stores WAL objects under their names (the gate looks at names only).
func archive(t *testing.T, st storage.Store, names ...string) {
	t.Helper()
	for _, name := range names {
		key, err := catalog.WALKey(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(context.Background(), key, []byte(name), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func seg(t *testing.T, name string) pg.Segment {
	t.Helper()
	s, err := pg.ParseSegmentName(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func lsn(t *testing.T, s string) pg.LSN {
	t.Helper()
	v, err := pg.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// spanNames lists every segment name of spans, in order.
func spanNames(spans []segSpan) []string {
	var out []string
	for _, sp := range spans {
		for n := sp.first; n <= sp.last; n++ {
			out = append(out, sp.segment(n, walSegSize).Name())
		}
	}
	return out
}

func TestWALSpans(t *testing.T) {
	tl2 := []catalog.HistoryEntry{{Parent: 1, Switch: 0x4800000}}                                 // 1 -> 2 inside segment 4
	tl3 := []catalog.HistoryEntry{{Parent: 1, Switch: 0x4800000}, {Parent: 2, Switch: 0x6000000}} // then 2 -> 3 on a segment boundary
	cases := []struct {
		name   string
		start  string
		stop   string
		latest pg.Timeline
		hist   []catalog.HistoryEntry
		want   []string
	}{
		{"one timeline, stop on a segment boundary ends in the segment before", "000000010000000000000002", "0/5000000", 1, nil,
			[]string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004"}},
		{"one timeline, stop inside a segment", "000000010000000000000002", "0/5000028", 1, nil,
			[]string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004", "000000010000000000000005"}},
		{"start and stop in one segment", "000000030000000100000002", "1/2000100", 3, nil,
			[]string{"000000030000000100000002"}},
		{"across a log boundary", "0000000100000000000000FE", "1/00000100", 1, nil,
			[]string{"0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000"}},
		// The switch segment comes from the new timeline; the old one's copy is a .partial.
		{"timeline switch inside a segment", "000000010000000000000002", "0/6000100", 2, tl2,
			[]string{"000000010000000000000002", "000000010000000000000003",
				"000000020000000000000004", "000000020000000000000005", "000000020000000000000006"}},
		{"two switches", "000000010000000000000003", "0/6000100", 3, tl3,
			[]string{"000000010000000000000003", "000000020000000000000004", "000000020000000000000005", "000000030000000000000006"}},
		{"switch after the stop segment: the old timeline only", "000000010000000000000002", "0/3800000", 2, tl2,
			[]string{"000000010000000000000002", "000000010000000000000003"}},
		{"stop in the switch segment, before the switch", "000000010000000000000002", "0/4100000", 2, tl2,
			[]string{"000000010000000000000002", "000000010000000000000003", "000000020000000000000004"}},
		{"start in the switch segment", "000000010000000000000004", "0/5000100", 2, tl2,
			[]string{"000000020000000000000004", "000000020000000000000005"}},
	}
	for _, c := range cases {
		spans, err := walSpans(seg(t, c.start), lsn(t, c.stop), c.latest, c.hist, walSegSize)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := spanNames(spans); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
	}
	if _, err := walSpans(seg(t, "000000020000000000000002"), 0x6000000, 3, []catalog.HistoryEntry{{Parent: 1, Switch: 0x1000000}}, walSegSize); err == nil {
		t.Error("a history that does not lead from the start timeline was accepted")
	}
}

// TestWaitForWALMissingMiddle: the stop segment is archived but one before
// it is not (look-ahead and the agent store segments out of order); the
// gate waits, then fails naming that segment.
func TestWaitForWALMissingMiddle(t *testing.T) {
	st := fileRepo(t)
	archive(t, st, "000000010000000000000002", "000000010000000000000004", "000000010000000000000005")
	spans := []segSpan{{tli: 1, first: 2, last: 5}}
	err := waitForWAL(context.Background(), st, spans, walSegSize, 300*time.Millisecond, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("the gate passed with segment 3 missing")
	}
	for _, want := range []string{"000000010000000000000003", "000000010000000000000002 to 000000010000000000000005", "archive_command"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	t.Log(err)
}

// TestWaitForWALNamesTheFirstFew: many missing segments are counted, and
// only the first few named.
func TestWaitForWALNamesTheFirstFew(t *testing.T) {
	st := fileRepo(t)
	archive(t, st, "000000010000000000000002", "00000001000000000000000F")
	err := waitForWAL(context.Background(), st, []segSpan{{tli: 1, first: 2, last: 15}}, walSegSize, 0, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "12 WAL segments") ||
		!strings.Contains(err.Error(), "000000010000000000000003, 000000010000000000000004, 000000010000000000000005, 000000010000000000000006, 000000010000000000000007 and 7 more") {
		t.Errorf("error: %v", err)
	}
}

// TestWaitForWALLateSegment: a missing segment that arrives within the
// timeout lets the gate pass.
func TestWaitForWALLateSegment(t *testing.T) {
	st := fileRepo(t)
	archive(t, st, "000000010000000000000002", "000000010000000000000004")
	go func() {
		time.Sleep(200 * time.Millisecond)
		archive(t, st, "000000010000000000000003")
	}()
	start := time.Now()
	if err := waitForWAL(context.Background(), st, []segSpan{{tli: 1, first: 2, last: 4}}, walSegSize, 10*time.Second, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Error("the gate passed before the missing segment arrived")
	}
}

// TestWaitForWALAcrossTimelineSwitch: a standby's backup that started on
// timeline 1 and stopped on 2 needs timeline 1 up to the segment before the
// switch and timeline 2 from the switch segment on, not the old
// timeline's copy of the switch segment.
func TestWaitForWALAcrossTimelineSwitch(t *testing.T) {
	st := fileRepo(t)
	spans, err := walSpans(seg(t, "000000010000000000000002"), lsn(t, "0/6000100"), 2,
		[]catalog.HistoryEntry{{Parent: 1, Switch: 0x4800000}}, walSegSize)
	if err != nil {
		t.Fatal(err)
	}
	// Timeline 1's segment 3 and timeline 2's stop segment: 2/5 is missing.
	archive(t, st, "000000010000000000000002", "000000010000000000000003", "000000010000000000000004.partial",
		"000000020000000000000004", "000000020000000000000006", "00000002.history")
	err = waitForWAL(context.Background(), st, spans, walSegSize, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "WAL segment 000000020000000000000005 ") {
		t.Fatalf("want an error naming 000000020000000000000005 alone, got %v", err)
	}
	archive(t, st, "000000020000000000000005")
	if err := waitForWAL(context.Background(), st, spans, walSegSize, 0, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
}

// TestWALGateListsOnlyFoldersStillMissing: a check lists each folder
// holding a missing segment once, and later checks only those still lacking one.
func TestWALGateListsOnlyFoldersStillMissing(t *testing.T) {
	fs := fileRepo(t)
	lists, stats := &storagetest.Rule{Op: storagetest.ListDir}, &storagetest.Rule{Op: storagetest.Stat}
	st := storagetest.Wrap(fs, lists, stats)
	// Segments 0/FE to 2/01: three folders of wal/, all complete but 1/80.
	var names []string
	spans := []segSpan{{tli: 1, first: 0xFE, last: 0x201}}
	for _, name := range spanNames(spans) {
		if name != "000000010000000100000080" {
			names = append(names, name)
		}
	}
	archive(t, fs, names...)
	g := newWALGate(st, spans, walSegSize)
	m, err := g.check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wal/0000000100000000/", "wal/0000000100000001/", "wal/0000000100000002/"}
	if m.count != 1 || !slices.Equal(lists.Keys(), want) {
		t.Fatalf("first check: %d missing, listed %v; want 1 missing, listed %v", m.count, lists.Keys(), want)
	}
	first := lists.Calls()
	if m, _ = g.check(context.Background()); m.count != 1 || !slices.Equal(lists.Keys()[first:], want[1:2]) {
		t.Fatalf("second check: %d missing, listed %v; want only %v", m.count, lists.Keys()[first:], want[1:2])
	}
	archive(t, fs, "000000010000000100000080")
	if m, _ = g.check(context.Background()); m.count != 0 {
		t.Fatalf("after the segment arrived: %d missing", m.count)
	}
	if stats.Calls() != 0 {
		t.Errorf("the gate made %d Stat calls; it should only list folders", stats.Calls())
	}
}

// claimedBackup stores the start of a backup as Backup does up to its
// WAL gate: the claim and a data object. It returns the manifest so far.
func claimedBackup(t *testing.T, st storage.Store) *catalog.Manifest {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2026, 11, 25, 13, 4, 5, 0, time.UTC)
	id, err := catalog.ClaimBackupID(ctx, st, start, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := storeObject(ctx, st, &codec.Encoder{}, catalog.DataKey(id, 0), []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	m := &catalog.Manifest{Objects: []catalog.BackupObject{obj}}
	m.ID, m.StartTime, m.WALSegmentSize, m.SystemID, m.Timeline = id, start, walSegSize, 42, 1
	m.StartWAL, m.StopWAL, m.StartLSN, m.StopLSN = "000000010000000000000002", "000000010000000000000004", "0/2000028", "0/4000100"
	m.BackupLabel = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
	return m
}

func listBackups(t *testing.T, st storage.Store) (complete []catalog.BackupSummary, incomplete []string) {
	t.Helper()
	complete, incomplete, err := catalog.ListBackups(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return complete, incomplete
}

// TestCompleteBackupWaitsForEveryWALSegment: with the stop segment stored
// but one before it missing, no manifest is written and the backup is not
// listed as complete; once the segment arrives, the backup completes.
func TestCompleteBackupWaitsForEveryWALSegment(t *testing.T) {
	st := fileRepo(t)
	ctx := context.Background()
	m := claimedBackup(t, st)
	spans := []segSpan{{tli: 1, first: 2, last: 4}}
	archive(t, st, "000000010000000000000002", "000000010000000000000004")

	err := completeBackup(ctx, st, m, spans, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "000000010000000000000003") {
		t.Fatalf("want an error naming 000000010000000000000003, got %v", err)
	}
	if _, err := st.Stat(ctx, catalog.ManifestKey(m.ID)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a manifest was written with WAL missing (stat: %v)", err)
	}
	if complete, incomplete := listBackups(t, st); len(complete) != 0 || !slices.Equal(incomplete, []string{m.ID}) {
		t.Errorf("listed complete %v, incomplete %v; want only %s, incomplete", complete, incomplete, m.ID)
	}

	go func() {
		time.Sleep(150 * time.Millisecond)
		archive(t, st, "000000010000000000000003")
	}()
	if err := completeBackup(ctx, st, m, spans, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if complete, _ := listBackups(t, st); len(complete) != 1 || complete[0].ID != m.ID || complete[0].Status != catalog.StatusComplete {
		t.Errorf("after the late segment, listed %+v", complete)
	}
}

// TestCompleteBackupLostClaim: a cleanup removes the backup's started
// marker while it waits for WAL; the backup fails without a manifest.
func TestCompleteBackupLostClaim(t *testing.T) {
	st := fileRepo(t)
	ctx := context.Background()
	m := claimedBackup(t, st)
	archive(t, st, "000000010000000000000002", "000000010000000000000004")
	go func() {
		time.Sleep(100 * time.Millisecond)
		// What a cleanup of leftovers does: everything, the claim last.
		if err := catalog.DeleteBackup(ctx, st, m.ID); err != nil {
			t.Error(err)
		}
		archive(t, st, "000000010000000000000003")
	}()
	err := completeBackup(ctx, st, m, []segSpan{{tli: 1, first: 2, last: 4}}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "started marker") || !strings.Contains(err.Error(), m.ID) {
		t.Fatalf("want an error about the lost started marker, got %v", err)
	}
	if _, err := st.Stat(ctx, catalog.ManifestKey(m.ID)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a manifest was written for a backup whose objects were deleted (stat: %v)", err)
	}
	if complete, _ := listBackups(t, st); len(complete) != 0 {
		t.Errorf("listed as complete: %+v", complete)
	}
	t.Log(err)
}

// TestTimelineHistoryFromPGWALOrRepository: the history of the timeline a
// standby moved to comes from pg_wal, else from the repository.
func TestTimelineHistoryFromPGWALOrRepository(t *testing.T) {
	ctx := context.Background()
	st := fileRepo(t)
	pgdata := t.TempDir()
	os.MkdirAll(filepath.Join(pgdata, "pg_wal"), 0o700)
	os.WriteFile(filepath.Join(pgdata, "pg_wal", "00000002.history"), []byte("1\t0/4800000\tno recovery target specified\n"), 0o600)
	hist, err := timelineHistory(ctx, st, pgdata, 2)
	if err != nil || len(hist) != 1 || hist[0] != (catalog.HistoryEntry{Parent: 1, Switch: 0x4800000}) {
		t.Errorf("from pg_wal: %v %v", hist, err)
	}

	text := "1\t0/4800000\tno recovery target specified\n2\t0/6000000\tno recovery target specified\n"
	var obj strings.Builder
	if err := (&codec.Encoder{}).Encode(&obj, codec.Header{Name: "00000003.history", Size: int64(len(text)), Checksum: codec.Checksum([]byte(text))}, strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	st.Put(ctx, "wal/00000003.history", []byte(obj.String()), storage.PutOptions{})
	if hist, err = timelineHistory(ctx, st, pgdata, 3); err != nil || len(hist) != 2 || hist[1].Parent != 2 {
		t.Errorf("from the repository: %v %v", hist, err)
	}
	if _, err = timelineHistory(ctx, st, pgdata, 4); err == nil || !strings.Contains(err.Error(), "00000004.history") {
		t.Errorf("without a history file: %v", err)
	}
}

// completeBackup runs a backup's last two steps, the WAL gate and the
// manifest, on m.
func completeBackup(ctx context.Context, st storage.Store, m *catalog.Manifest, spans []segSpan, walTimeout time.Duration) error {
	r := &backupRun{st: st, enc: &codec.Encoder{}, m: *m, spans: spans, o: BackupOptions{WALTimeout: walTimeout}.withDefaults()}
	if err := r.waitForWAL(ctx); err != nil {
		return err
	}
	if err := r.writeManifest(ctx); err != nil {
		return err
	}
	*m = r.m
	return nil
}
