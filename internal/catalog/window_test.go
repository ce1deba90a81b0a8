package catalog

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

const seg16 = 16 << 20

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// listing makes a wal/ listing of segments, each stored a minute after the previous.
func listing(names ...string) []storage.ObjectInfo {
	var out []storage.ObjectInfo
	for i, n := range names {
		key, _ := WALKey(n)
		out = append(out, storage.ObjectInfo{Key: WALPrefix + key[len(WALPrefix):], ModTime: t0.Add(time.Duration(i) * time.Minute)})
	}
	return out
}

func TestWindowOneTimeline(t *testing.T) {
	a := NewArchive(seg16, listing(
		"000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
		// a gap: 05 is missing, so 06 is out of reach
		"000000010000000000000006",
	))
	b := BackupSummary{ID: "b1", Timeline: 1, StartWAL: "000000010000000000000002", StopLSN: "0/3000100", StopTime: t0.Add(30 * time.Second)}
	w, ok := a.Reach(b, 1)
	want := Window{Timeline: 1, Backup: "b1", StartLSN: "0/3000100", StartTime: b.StopTime,
		EndWAL: "000000010000000000000004", EndLSN: "0/5000000", EndTime: t0.Add(2 * time.Minute), Complete: true}
	if !ok || w != want {
		t.Fatalf("Reach = %+v %v\nwant %+v", w, ok, want)
	}
	// A backup whose stop segment is not archived is not restorable.
	b2 := BackupSummary{ID: "b2", Timeline: 1, StartWAL: "000000010000000000000004", StopLSN: "0/5000100", StopTime: t0.Add(time.Hour)}
	if w, ok := a.Reach(b2, 1); !ok || w.Complete || w.EndLSN != "0/5000000" {
		t.Errorf("backup past a gap: %+v %v; want incomplete, ending at 0/5000000", w, ok)
	}
	// Windows skips it and starts from b.
	if ws := a.Windows([]BackupSummary{b, b2}); len(ws) != 1 || ws[0] != want {
		t.Errorf("Windows = %+v", ws)
	}
	if ws := a.Windows([]BackupSummary{b2}); len(ws) != 0 {
		t.Errorf("Windows without a restorable backup = %+v", ws)
	}
	// No timeline 2 history: unrelated.
	if _, ok := a.Reach(b, 2); ok {
		t.Error("timeline 2 without a history file reached")
	}
	if a.Latest(1) != 1 {
		t.Errorf("Latest = %d", a.Latest(1))
	}
}

func TestWindowAcrossTimelines(t *testing.T) {
	// Timeline 2 branched from 1 at 0/4800000 (in segment 04); timeline 3
	// branched from 2 at 0/6000000 and has nothing archived yet.
	a := NewArchive(seg16, listing(
		"000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
		"000000020000000000000004", "000000020000000000000005",
		"000000010000000000000005", // the old timeline went on a little (a split brain, or .partial)
	))
	a.History[2] = []HistoryEntry{{Parent: 1, Switch: 0x4800000}}
	a.History[3] = []HistoryEntry{{Parent: 1, Switch: 0x4800000}, {Parent: 2, Switch: 0x6000000}}
	b := BackupSummary{ID: "b1", Timeline: 1, StartWAL: "000000010000000000000002", StopLSN: "0/3000100", StopTime: t0}
	w, ok := a.Reach(b, 2)
	if !ok || !w.Complete || w.EndWAL != "000000020000000000000005" || w.EndLSN != "0/6000000" || w.Timeline != 2 {
		t.Errorf("timeline 2: %+v %v", w, ok)
	}
	w, ok = a.Reach(b, 3)
	if !ok || !w.Complete || w.EndLSN != "0/6000000" || w.EndWAL != "000000020000000000000005" || w.Timeline != 3 {
		t.Errorf("timeline 3 (nothing archived on it yet): %+v %v", w, ok)
	}
	if got := a.Latest(1); got != 3 {
		t.Errorf("Latest = %d, want 3", got)
	}
	// A backup taken on timeline 1 after timeline 2 branched off cannot follow it.
	late := BackupSummary{ID: "late", Timeline: 1, StartWAL: "000000010000000000000004", StopLSN: "0/4900000", StopTime: t0}
	if _, ok := a.Reach(late, 2); ok {
		t.Error("a backup ending after the branch point reaches timeline 2")
	}
	// PostgreSQL stops looking at the first missing history file.
	gap := NewArchive(seg16, nil)
	gap.History[2], gap.History[4] = a.History[2], []HistoryEntry{{Parent: 2, Switch: 0x7000000}}
	if got := gap.Latest(1); got != 2 {
		t.Errorf("Latest with 00000003.history missing = %d, want 2", got)
	}
	// When timeline 1's WAL stops before the branch, so does timeline 2's window.
	// (The segment holding the branch point is read from timeline 2.)
	short := NewArchive(seg16, listing("000000010000000000000002", "000000020000000000000004"))
	short.History[2] = a.History[2]
	early := BackupSummary{ID: "early", Timeline: 1, StartWAL: "000000010000000000000002", StopLSN: "0/2000100", StopTime: t0}
	if w, ok := short.Reach(early, 2); !ok || w.EndLSN != "0/3000000" || w.EndWAL != "000000010000000000000002" {
		t.Errorf("timeline 2 behind a gap on timeline 1: %+v %v", w, ok)
	}
	ws := a.Windows([]BackupSummary{b})
	if len(ws) != 3 || ws[0].Timeline != 1 || ws[1].Timeline != 2 || ws[2].Timeline != 3 {
		t.Errorf("Windows = %+v", ws)
	}
}

func TestParseHistoryAndLoadArchive(t *testing.T) {
	h, err := ParseHistory("1\t0/4800000\tno recovery target specified\n\n# comment\n2\t1/A0\tat restore point \"x\"\n")
	if err != nil || len(h) != 2 || h[0] != (HistoryEntry{1, 0x4800000}) || h[1] != (HistoryEntry{2, 1<<32 | 0xA0}) {
		t.Fatalf("ParseHistory = %+v, %v", h, err)
	}
	if _, err := ParseHistory("1 nonsense\n"); err == nil {
		t.Error("a bad history line parsed")
	}
	ctx := context.Background()
	st := testStore(t)
	enc := &codec.Encoder{Compression: "zstd"}
	put := func(name, content string) {
		var buf bytes.Buffer
		data := []byte(content)
		if err := enc.Encode(&buf, codec.Header{Name: name, Size: int64(len(data)), Checksum: codec.Checksum(data)}, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		key, _ := WALKey(name)
		if err := st.Put(ctx, key, buf.Bytes(), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("000000010000000000000001", "seg")
	put("000000020000000000000001", "seg")
	put("00000002.history", "1\t0/1800000\tno recovery target specified\n")
	a, err := LoadArchive(ctx, st, &codec.Decoder{}, seg16)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.History[2]; len(got) != 1 || got[0] != (HistoryEntry{1, 0x1800000}) {
		t.Errorf("history of timeline 2: %+v", got)
	}
	b := BackupSummary{ID: "b", Timeline: 1, StartWAL: "000000010000000000000001", StopLSN: "0/1000200"}
	if w, ok := a.Reach(b, 2); !ok || !w.Complete || w.EndLSN != "0/2000000" || w.EndTime.IsZero() {
		t.Errorf("window on timeline 2 from the stored archive: %+v %v", w, ok)
	}
}

// The archive keeps runs of consecutive segments, whatever order the
// objects come in; it agrees with a plain set of segment numbers on every
// question asked of it.
func TestArchiveRunsMatchTheSegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		present := map[uint64]bool{}
		var objs []storage.ObjectInfo
		for range rng.IntN(40) {
			n := uint64(rng.IntN(60)) + 0xFE // crosses a 4 GiB log boundary (256 segments)
			present[n] = true
			s := pg.SegmentNo(3, n, seg16)
			key, _ := WALKey(s.Name())
			objs = append(objs, storage.ObjectInfo{Key: key, ModTime: t0.Add(time.Duration(n) * time.Minute)})
			if rng.IntN(4) == 0 {
				objs = append(objs, objs[rng.IntN(len(objs))]) // listed twice
			}
		}
		if round%2 == 0 {
			slices.SortFunc(objs, func(a, b storage.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
		} else {
			rng.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
		}
		a := NewArchive(seg16, objs)
		for n := uint64(0xF0); n < 0x150; n++ {
			s := pg.SegmentNo(3, n, seg16)
			if a.Has(s) != present[n] {
				t.Fatalf("round %d: segment %s archived %v, want %v", round, s.Name(), a.Has(s), present[n])
			}
			// The window from n ends where the first gap after it begins.
			w := Window{Timeline: 3}
			a.scan(&w, n)
			end := n
			for present[end] {
				end++
			}
			if want := pg.LSN(end * seg16).String(); (end > n) != (w.EndWAL != "") || (end > n && (w.EndLSN != want ||
				w.EndWAL != pg.SegmentNo(3, end-1, seg16).Name() || !w.EndTime.Equal(t0.Add(time.Duration(end-1)*time.Minute)))) {
				t.Fatalf("round %d: from %X: %+v, want the end at %s", round, n, w, want)
			}
		}
		for i := 1; i < len(a.segments[3]); i++ {
			if r := a.segments[3]; r[i-1].last+1 >= r[i].first {
				t.Fatalf("round %d: runs %+v and %+v touch", round, r[i-1], r[i])
			}
		}
	}
}

// WalkWAL hands over the history files first, then one folder at a time,
// in key order; LoadArchive built that way equals one built from a full
// listing.
func TestWalkWALFolderByFolder(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	var names []string
	for _, tli := range []pg.Timeline{1, 2} {
		for n := uint64(0xF0); n < 0x230; n += 1 + n%3/2 { // gaps, and three folders per timeline
			names = append(names, pg.SegmentNo(tli, n, seg16).Name())
		}
	}
	for _, n := range names {
		key, _ := WALKey(n)
		if err := st.Put(ctx, key, []byte("x"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	history := []byte("1\t0/1800000\tno recovery target specified\n")
	var obj bytes.Buffer
	if err := (&codec.Encoder{}).Encode(&obj, codec.Header{Name: "00000002.history", Size: int64(len(history)), Checksum: codec.Checksum(history)}, bytes.NewReader(history)); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "wal/00000002.history", obj.Bytes(), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var calls [][]storage.ObjectInfo
	err := WalkWAL(ctx, st, func(objs []storage.ObjectInfo) error {
		calls = append(calls, objs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 7 || len(calls[0]) != 1 || calls[0][0].Key != "wal/00000002.history" {
		t.Fatalf("%d calls, the first with %v; want the history file, then 6 folders", len(calls), calls[0])
	}
	var walked []storage.ObjectInfo
	for _, c := range calls[1:] {
		folder := path.Dir(c[0].Key)
		for _, o := range c {
			if path.Dir(o.Key) != folder {
				t.Errorf("one call holds %s and %s", c[0].Key, o.Key)
			}
		}
		walked = append(walked, c...)
	}
	all, err := st.List(ctx, WALPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var segments []storage.ObjectInfo
	for _, o := range all {
		if !strings.HasSuffix(o.Key, ".history") {
			segments = append(segments, o)
		}
	}
	if !slices.Equal(walked, segments) {
		t.Errorf("walked %d segments, a full listing has %d, or in another order", len(walked), len(segments))
	}
	a, err := LoadArchive(ctx, st, &codec.Decoder{}, seg16)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.History[2]) != 1 {
		t.Errorf("history of timeline 2: %+v", a.History[2])
	}
	if b := NewArchive(seg16, all); !reflect.DeepEqual(a.segments, b.segments) {
		t.Errorf("walked archive %+v\nlisted archive %+v", a.segments, b.segments)
	}
	stop := errors.New("stop")
	if err := WalkWAL(ctx, st, func([]storage.ObjectInfo) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("an error of fn: %v", err)
	}
}

// A window whose last segment is the backup's own was stored before the
// backup recorded its stop time; it must not read as ending before it
// starts (backup list prints End).
func TestWindowNeverEndsBeforeItStarts(t *testing.T) {
	stop := time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)
	early := Window{Timeline: 1, Backup: "b1", StartLSN: "0/2000100", StartTime: stop,
		EndWAL: "000000010000000000000002", EndLSN: "0/3000000", EndTime: stop.Add(-time.Second), Complete: true}
	if !early.DisplayEnd().Equal(stop) {
		t.Errorf("window at the backup's end: ends %s, want %s", early.DisplayEnd(), stop)
	}
	later := Window{Timeline: 2, Backup: "b1", StartLSN: "0/2000100", StartTime: stop,
		EndWAL: "000000020000000000000009", EndLSN: "0/A000000", EndTime: stop.Add(time.Hour), Complete: true}
	if !later.DisplayEnd().Equal(stop.Add(time.Hour)) {
		t.Errorf("later window: ends %s, want %s", later.DisplayEnd(), stop.Add(time.Hour))
	}
}
