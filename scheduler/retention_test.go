package scheduler

import (
	"bytes"
	"context"
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

const segSize = 1 << 20

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// repo is a file:// repository in a temporary directory.
type repo struct {
	t    *testing.T
	st   storage.Store
	root string
}

func newRepo(t *testing.T) *repo {
	root := filepath.Join(t.TempDir(), "repo")
	st, err := storage.Open(context.Background(), "file://"+root, storage.Options{RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &repo{t: t, st: st, root: root}
}

func (r *repo) put(key string, data []byte) {
	r.t.Helper()
	if err := r.st.Put(context.Background(), key, data, storage.PutOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

// wal stores segments first..last of timeline tli (contents do not matter here).
func (r *repo) wal(tli pg.Timeline, first, last uint32) {
	for n := first; n <= last; n++ {
		key, _ := catalog.WALKey(seg(tli, n))
		r.put(key, []byte("segment"))
	}
}

// history stores the history file of tli, encoded as wal-push does.
func (r *repo) history(tli pg.Timeline, text string) {
	name := pg.Segment{Timeline: tli}.Name()[:8] + ".history"
	var buf bytes.Buffer
	h := codec.Header{Name: name, Size: int64(len(text)), Checksum: codec.Checksum([]byte(text))}
	if err := (&codec.Encoder{}).Encode(&buf, h, strings.NewReader(text)); err != nil {
		r.t.Fatal(err)
	}
	key, _ := catalog.WALKey(name)
	r.put(key, buf.Bytes())
}

// backup stores a complete backup on tli whose WAL runs from segment start
// to stop, ending at stopTime.
func (r *repo) backup(id string, tli pg.Timeline, start, stop uint32, stopTime time.Time) {
	r.backupAt(id, tli, start, stop, stopTime.Add(-time.Minute), stopTime)
}

func (r *repo) backupAt(id string, tli pg.Timeline, start, stop uint32, startTime, stopTime time.Time) {
	m := &catalog.Manifest{BackupSummary: catalog.BackupSummary{ID: id, Status: catalog.StatusComplete, WALSegmentSize: segSize,
		Timeline: tli, StartWAL: seg(tli, start), StopWAL: seg(tli, stop),
		StartLSN: pg.LSN(uint64(start) * segSize).String(), StopLSN: pg.LSN(uint64(stop)*segSize + 100).String(),
		StartTime: startTime, StopTime: stopTime}}
	r.put(catalog.StartedKey(id), []byte("{}"))
	r.put(catalog.DataKey(id, 0), []byte("data"))
	if err := catalog.PutManifest(context.Background(), r.st, &codec.Encoder{}, m); err != nil {
		r.t.Fatal(err)
	}
}

// incomplete stores a started backup without manifest, last written at t.
func (r *repo) incomplete(id string, t time.Time) {
	for _, key := range []string{catalog.StartedKey(id), catalog.DataKey(id, 0), catalog.DataKey(id, 1)} {
		r.put(key, []byte("x"))
		if err := os.Chtimes(filepath.Join(r.root, key), t, t); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *repo) keys(prefix string) []string {
	objs, err := r.st.List(context.Background(), prefix)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

func seg(tli pg.Timeline, n uint32) string { return pg.Segment{Timeline: tli, Seg: n}.Name() }

func walKeys(tli pg.Timeline, first, last uint32) []string {
	var out []string
	for n := first; n <= last; n++ {
		k, _ := catalog.WALKey(seg(tli, n))
		out = append(out, k)
	}
	return out
}

func ids(list []catalog.BackupSummary) string {
	var out []string
	for _, b := range list {
		out = append(out, b.ID)
	}
	return strings.Join(out, " ")
}

func plan(t *testing.T, r *repo, p Policy) *Plan {
	t.Helper()
	if p.IncompleteGrace == 0 {
		p.IncompleteGrace = DefaultIncompleteGrace
	}
	p.Now = now
	pl, err := PlanRetention(context.Background(), r.st, &codec.Decoder{}, p)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// Names sort opposite to the stop times: retention must follow the stop times.
func TestKeepOrdersByStopTime(t *testing.T) {
	r := newRepo(t)
	r.wal(1, 1, 10)
	r.backup("20261101T000000Z", 1, 8, 8, now.Add(-1*time.Hour))
	r.backup("20261102T000000Z", 1, 5, 5, now.Add(-2*time.Hour))
	r.backup("20261103T000000Z", 1, 2, 2, now.Add(-3*time.Hour))
	before := r.keys("")
	pl := plan(t, r, Policy{Keep: 1})
	if got := ids(pl.Expired); got != "20261103T000000Z 20261102T000000Z" {
		t.Errorf("expired %q", got)
	}
	if got := ids(pl.Kept); got != "20261101T000000Z" {
		t.Errorf("kept %q", got)
	}
	if !slices.Equal(pl.WAL, walKeys(1, 1, 7)) || pl.WALKept != 3 {
		t.Errorf("WAL to delete %v (%d kept); want segments 1..7, 3 kept", pl.WAL, pl.WALKept)
	}
	if len(pl.Windows) != 1 || pl.Windows[0].Backup != "20261101T000000Z" || pl.Windows[0].EndWAL != seg(1, 10) {
		t.Errorf("windows after: %+v", pl.Windows)
	}
	// Planning deletes nothing (the dry run).
	if after := r.keys(""); !slices.Equal(after, before) {
		t.Errorf("planning changed the repository")
	}
	if err := Apply(context.Background(), r.st, pl, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	want := append([]string{
		catalog.DataKey("20261101T000000Z", 0), catalog.ManifestKey("20261101T000000Z"), catalog.StartedKey("20261101T000000Z"),
		catalog.SummaryKey("20261101T000000Z"),
	}, walKeys(1, 8, 10)...)
	if got := r.keys(""); !slices.Equal(got, want) {
		t.Errorf("left:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing more to do.
	if pl := plan(t, r, Policy{Keep: 1}); len(pl.Expired) != 0 || len(pl.WAL) != 0 {
		t.Errorf("second run: %+v", pl)
	}
}

// A long backup that started first but ended last is the newest.
func TestStopTimeNotStartTime(t *testing.T) {
	r := newRepo(t)
	r.wal(1, 1, 10)
	r.backupAt("20261101T000000Z", 1, 2, 9, now.Add(-5*time.Hour), now.Add(-30*time.Minute))
	r.backupAt("20261102T000000Z", 1, 5, 6, now.Add(-2*time.Hour), now.Add(-1*time.Hour))
	pl := plan(t, r, Policy{Keep: 1})
	if ids(pl.Kept) != "20261101T000000Z" || !slices.Equal(pl.WAL, walKeys(1, 1, 1)) {
		t.Errorf("kept %q, WAL %v; want the backup that ended last, WAL from its start (segment 2)", ids(pl.Kept), pl.WAL)
	}
}

// Timeline 2 began in segment 6; one backup on each timeline.
func TestKeepAcrossTimelines(t *testing.T) {
	r := newRepo(t)
	r.wal(1, 1, 8)
	r.history(2, "1\t0/680000\tno recovery target specified\n")
	r.wal(2, 6, 10)
	r.backup("20261101T000000Z", 1, 2, 3, now.Add(-2*time.Hour))
	r.backup("20261102T000000Z", 2, 9, 9, now.Add(-1*time.Hour))

	pl := plan(t, r, Policy{Keep: 2})
	if len(pl.Expired) != 0 || !slices.Equal(pl.WAL, walKeys(1, 1, 1)) {
		t.Errorf("keep 2: expired %q, WAL %v; want nothing expired, segment 1 of timeline 1 deleted", ids(pl.Expired), pl.WAL)
	}
	if len(pl.Windows) != 2 || pl.Windows[0].Backup != "20261101T000000Z" || pl.Windows[1].EndWAL != seg(2, 10) {
		t.Errorf("keep 2: windows %+v", pl.Windows)
	}
	pl = plan(t, r, Policy{Keep: 1})
	want := append(walKeys(1, 1, 8), walKeys(2, 6, 8)...)
	if ids(pl.Expired) != "20261101T000000Z" || !slices.Equal(pl.WAL, want) {
		t.Errorf("keep 1: expired %q, WAL %v; want the timeline 1 backup, %v", ids(pl.Expired), pl.WAL, want)
	}
	if len(pl.Windows) != 1 || pl.Windows[0].Timeline != 2 || pl.Windows[0].Backup != "20261102T000000Z" {
		t.Errorf("keep 1: windows %+v", pl.Windows)
	}
	if err := Apply(context.Background(), r.st, pl, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	wantWAL := append([]string{"wal/00000002.history"}, walKeys(2, 9, 10)...)
	if got := r.keys(catalog.WALPrefix); !slices.Equal(got, wantWAL) {
		t.Errorf("WAL left %v, want %v", got, wantWAL)
	}
}

func TestRecoveryWindow(t *testing.T) {
	r := newRepo(t)
	r.wal(1, 1, 10)
	day := 24 * time.Hour
	r.backup("20261001T000000Z", 1, 1, 1, now.Add(-50*day))
	r.backup("20261010T000000Z", 1, 3, 3, now.Add(-40*day))
	r.backup("20261101T000000Z", 1, 5, 5, now.Add(-20*day))
	r.backup("20261125T000000Z", 1, 7, 7, now.Add(-time.Hour))
	for _, c := range []struct {
		window  time.Duration
		expired string
		walFrom uint32
	}{
		{60 * day, "", 1},                 // no backup ended before the window: all needed
		{40 * day, "20261001T000000Z", 3}, // the one that ended exactly at the cutoff still reaches it
		{30 * day, "20261001T000000Z", 3}, // the newest ended before now-30d, and all newer
		{15 * day, "20261001T000000Z 20261010T000000Z", 5},
		{time.Minute, "20261001T000000Z 20261010T000000Z 20261101T000000Z", 7},
	} {
		pl := plan(t, r, Policy{Window: c.window})
		if got := ids(pl.Expired); got != c.expired {
			t.Errorf("window %s: expired %q, want %q", c.window, got, c.expired)
		}
		var want []string
		if c.walFrom > 1 {
			want = walKeys(1, 1, c.walFrom-1)
		}
		if !slices.Equal(pl.WAL, want) {
			t.Errorf("window %s: WAL %v, want %v", c.window, pl.WAL, want)
		}
	}
}

// The newest complete backup is never deleted, and without a complete
// backup no WAL is.
func TestNeverDeletesNewestOrUnknown(t *testing.T) {
	r := newRepo(t)
	r.wal(1, 1, 3)
	r.wal(3, 2, 4) // timeline 3 without a readable history
	if pl := plan(t, r, Policy{Keep: 1}); len(pl.WAL) != 0 {
		t.Errorf("no backup: WAL %v deleted", pl.WAL)
	}
	r.backup("20261101T000000Z", 1, 2, 2, now.Add(-100*24*time.Hour))
	pl := plan(t, r, Policy{Window: time.Hour})
	if len(pl.Kept) != 1 || !slices.Equal(pl.WAL, walKeys(1, 1, 1)) {
		t.Errorf("kept %q, WAL %v; want the only backup kept and segment 1 deleted", ids(pl.Kept), pl.WAL)
	}
	if len(pl.Warnings) != 1 || !strings.Contains(pl.Warnings[0], "timeline 3") {
		t.Errorf("warnings %v; want one about timeline 3", pl.Warnings)
	}
}

func TestIncompleteBackups(t *testing.T) {
	r := newRepo(t)
	r.backup("20261101T000000Z", 1, 2, 2, now.Add(-time.Hour))
	r.incomplete("20261120T000000Z", now.Add(-2*time.Hour))    // leftovers
	r.incomplete("20261125T114500Z", now.Add(-10*time.Minute)) // may still run
	pl := plan(t, r, Policy{Keep: 1})
	if len(pl.Incomplete) != 1 || pl.Incomplete[0].ID != "20261120T000000Z" || pl.Incomplete[0].Objects != 3 {
		t.Errorf("incomplete to delete: %+v", pl.Incomplete)
	}
	if len(pl.IncompleteKept) != 1 || pl.IncompleteKept[0].ID != "20261125T114500Z" {
		t.Errorf("incomplete kept: %+v", pl.IncompleteKept)
	}
	if pl := plan(t, r, Policy{Keep: 1, IncompleteGrace: 5 * time.Minute}); len(pl.Incomplete) != 2 {
		t.Errorf("grace 5m: %+v", pl.Incomplete)
	}
	// The plan reads each backup folder once: what ListBackups found
	// incomplete is described, not looked for again.
	reads := &storagetest.Rule{Op: storagetest.ListDir}
	if _, err := PlanRetention(context.Background(), storagetest.Wrap(r.st, reads), &codec.Decoder{}, Policy{Keep: 1, IncompleteGrace: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	if n := reads.Count(catalog.BackupPrefix); n != 1 {
		t.Errorf("the plan listed backups/ %d times, want once", n)
	}
	for _, id := range []string{"20261101T000000Z", "20261120T000000Z", "20261125T114500Z"} {
		if n := reads.Count(catalog.BackupPrefix + id + "/"); n != 1 {
			t.Errorf("the plan read the folder of %s %d times, want once", id, n)
		}
	}
	gone, err := CleanIncomplete(context.Background(), r.st, time.Hour, now)
	if err != nil || len(gone) != 1 || gone[0].ID != "20261120T000000Z" {
		t.Fatalf("CleanIncomplete: %+v, %v", gone, err)
	}
	if got := r.keys(catalog.BackupPrefix + "20261120T000000Z/"); len(got) != 0 {
		t.Errorf("leftovers remain: %v", got)
	}
	if got := r.keys(catalog.BackupPrefix + "20261125T114500Z/"); len(got) != 3 {
		t.Errorf("the backup within the grace period lost objects: %v", got)
	}
	list, inc, _ := catalog.ListBackups(context.Background(), r.st)
	if len(list) != 1 || len(inc) != 1 {
		t.Errorf("after cleanup: %d complete, %d incomplete; want 1 and 1", len(list), len(inc))
	}
	if _, err := CleanIncomplete(context.Background(), r.st, 0, now); err == nil {
		t.Error("a zero grace period was accepted")
	}
}

func TestBadPolicies(t *testing.T) {
	for _, c := range []struct {
		p    Policy
		want string
	}{
		{Policy{Keep: 1, Window: time.Hour, IncompleteGrace: time.Hour}, "not both"},
		{Policy{IncompleteGrace: time.Hour}, "no retention policy"},
		{Policy{Keep: -1, IncompleteGrace: time.Hour}, "keep at least 1"},
		{Policy{Keep: 1}, "must be positive"},
	} {
		if err := c.p.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want %q", c.p, err, c.want)
		}
	}
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "12h": 12 * time.Hour, "6m": 6 * 31 * 24 * time.Hour, "1h30m": 90 * time.Minute, "3600s": time.Hour} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"30x", "", "0d", "-3d", "d", "1.5d", "0m", "-1h"} {
		if _, err := ParseWindow(in); err == nil {
			t.Errorf("ParseWindow(%q) accepted", in)
		}
	}
	r := newRepo(t)
	r.backup("20261101T000000Z", 1, 2, 2, now.Add(-time.Hour))
	if _, err := PlanRetention(context.Background(), r.st, &codec.Decoder{}, Policy{IncompleteGrace: time.Hour, Now: now}); err == nil {
		t.Error("PlanRetention without a policy succeeded")
	}
}

// A backup that may still be running (incomplete, within the grace
// period) has no start segment yet: WAL stored since it began is kept.
func TestRunningBackupKeepsNewerWAL(t *testing.T) {
	r := newRepo(t)
	r.wal(1, 1, 7)
	for n := uint32(1); n <= 7; n++ {
		mtime := now.Add(-3 * time.Hour)
		if n >= 5 {
			mtime = now.Add(-10 * time.Minute)
		}
		key, _ := catalog.WALKey(seg(1, n))
		if err := os.Chtimes(filepath.Join(r.root, key), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	r.backup("20261101T000000Z", 1, 1, 1, now.Add(-2*time.Hour))
	r.backup("20261102T000000Z", 1, 6, 6, now.Add(-1*time.Hour))
	if pl := plan(t, r, Policy{Keep: 1}); !slices.Equal(pl.WAL, walKeys(1, 1, 5)) {
		t.Errorf("no running backup: WAL %v, want segments 1..5", pl.WAL)
	}
	r.incomplete("20261125T114000Z", now.Add(-20*time.Minute))
	pl := plan(t, r, Policy{Keep: 1})
	if !slices.Equal(pl.WAL, walKeys(1, 1, 4)) || len(pl.IncompleteKept) != 1 || !pl.IncompleteKept[0].Started.Equal(now.Add(-20*time.Minute)) {
		t.Errorf("a backup running since 20 minutes: WAL %v, want segments 1..4; incomplete %+v", pl.WAL, pl.IncompleteKept)
	}
}
