package catalog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// The recoverable window of a timeline is the span that point-in-time
// recovery can reach on it: from the end of a base backup (recovery must
// replay at least that far to be consistent) to the end of the last WAL
// segment archived without a gap after the backup's first one.
//
// LSNs bound the window exactly. Times bound it from the outside:
//   - the start is the backup's StopTime, recorded once its last segment was
//     archived, so it is at or after every commit the backup needs; a time
//     target before it cannot be reached from that backup;
//   - the end is the modification time of the last segment's object. The
//     store sets it when the upload completed, after every record in the
//     segment was written, so no commit in the archive is newer. Reading the
//     segment to find its last commit would be exact, but costs a download
//     per listing.
//
// Both are wall clocks of other machines (walship's when it wrote the
// manifest, the store's for the object), so a skew of a few seconds between
// them and the database server blurs the edges.

// Window is the recoverable window of one timeline, starting from one backup.
type Window struct {
	Timeline  pg.Timeline `json:"timeline"`
	Backup    string      `json:"backup"`     // the backup it starts from
	StartLSN  string      `json:"start_lsn"`  // the backup's stop LSN
	StartTime time.Time   `json:"start_time"` // the backup's stop time
	EndWAL    string      `json:"end_wal"`    // last segment reached without a gap ("" when none)
	EndLSN    string      `json:"end_lsn"`    // end of EndWAL
	EndTime   time.Time   `json:"end_time"`   // when EndWAL was stored
	// Complete is false when the archive does not even reach the backup's
	// stop LSN (a segment is missing): the backup cannot be restored on
	// this timeline at all.
	Complete bool `json:"complete"`
}

// DisplayEnd is when the window ends as a person should read it: EndTime, but
// never before StartTime. When the archive ends with the backup's own last
// segment, that segment was stored before the backup recorded its stop
// time: the window is the backup's end alone, not a span that ends before
// it starts.
func (w Window) DisplayEnd() time.Time {
	if w.EndTime.Before(w.StartTime) {
		return w.StartTime
	}
	return w.EndTime
}

// HistoryEntry is one line of a timeline history file: timeline Parent
// ended at Switch, where its child began.
type HistoryEntry struct {
	Parent pg.Timeline
	Switch pg.LSN
}

// Archive is what the repository holds of WAL: the runs of consecutive
// segments of each timeline, and the timelines' histories. Runs, not
// segments, so memory follows the gaps in the archive, not its length.
// Segments are counted in SegSize, the database system's wal_segment_size
// (see SegmentSize); an archive whose segment size is unknown (0) indexes
// none, and reaches no window.
type Archive struct {
	SegSize  uint32
	segments map[pg.Timeline][]segRun       // timeline -> runs, by first segment
	History  map[pg.Timeline][]HistoryEntry // timeline -> its ancestors, oldest first
}

// segRun is segments first..last (numbers: pg.Segment.No), all
// archived; last is the object of the last one.
type segRun struct {
	first, last uint64
	lastObj     storage.ObjectInfo
}

// walFoldersAtOnce is how many folders of wal/ are listed concurrently.
const walFoldersAtOnce = 8

// WalkWAL lists the archived WAL one folder at a time, in key order, and
// hands each folder's objects to fn, the history files at the top of wal/
// first. Memory holds a few folders (a folder is 4 GiB of WAL: 256 segments
// of 16 MiB), not the archive, and every listing is one short store call
// however long the archive grows.
func WalkWAL(ctx context.Context, st storage.Store, fn func([]storage.ObjectInfo) error) error {
	top, dirs, err := st.ListDir(ctx, WALPrefix)
	if err != nil {
		return fmt.Errorf("listing the archived WAL: %w", err)
	}
	if err := fn(top); err != nil {
		return err
	}
	for len(dirs) > 0 {
		batch := dirs[:min(len(dirs), walFoldersAtOnce)]
		dirs = dirs[len(batch):]
		listed := make([][]storage.ObjectInfo, len(batch))
		g, gctx := errgroup.WithContext(ctx)
		for i, d := range batch {
			g.Go(func() error {
				objs, _, err := st.ListDir(gctx, d)
				listed[i] = objs
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("listing the archived WAL: %w", err)
		}
		for _, objs := range listed {
			if err := fn(objs); err != nil {
				return err
			}
		}
	}
	return nil
}

// SegmentSize is the segment size of the WAL the repository holds, as its
// records give it: the identity record's (id, nil when there is none),
// else its backups' (all of one database system). 0 when neither exists:
// nothing was archived there yet, so there are no segments to count.
func SegmentSize(id *Identity, backups []BackupSummary) uint32 {
	switch {
	case id != nil:
		return id.WALSegmentSize
	case len(backups) > 0:
		return backups[0].WALSegmentSize
	}
	return 0
}

// LoadArchive lists the repository's WAL and reads its history files.
func LoadArchive(ctx context.Context, st storage.Store, dec *codec.Decoder, segSize uint32) (*Archive, error) {
	return WalkArchive(ctx, st, dec, segSize, nil)
}

// WalkArchive is LoadArchive that also shows visit every object of wal/,
// once the archive knows every timeline's history (the history files are
// listed and read first) and while it is still being filled in.
func WalkArchive(ctx context.Context, st storage.Store, dec *codec.Decoder, segSize uint32,
	visit func(*Archive, storage.ObjectInfo) error) (*Archive, error) {
	a := NewArchive(segSize, nil)
	err := WalkWAL(ctx, st, func(objs []storage.ObjectInfo) error {
		for _, o := range objs {
			name := strings.TrimPrefix(o.Key, WALPrefix)
			if pg.KindOf(name) != pg.KindHistory {
				continue
			}
			tli, _ := strconv.ParseUint(name[:8], 16, 32)
			entries, err := loadHistory(ctx, st, dec, o.Key)
			if err != nil {
				return err
			}
			if entries != nil {
				a.History[pg.Timeline(tli)] = entries
			}
		}
		for _, o := range objs {
			a.Add(o)
			if visit != nil {
				if err := visit(a, o); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// NewArchive indexes objects of wal/ (history files are read separately).
func NewArchive(segSize uint32, objs []storage.ObjectInfo) *Archive {
	a := &Archive{SegSize: segSize, segments: map[pg.Timeline][]segRun{}, History: map[pg.Timeline][]HistoryEntry{}}
	for _, o := range objs {
		a.Add(o)
	}
	return a
}

// Add records one object of wal/; anything but a segment is ignored.
// Objects usually come in key order, which only extends the last run.
func (a *Archive) Add(o storage.ObjectInfo) {
	name := o.Key[strings.LastIndexByte(o.Key, '/')+1:]
	if pg.KindOf(name) != pg.KindSegment || a.SegSize == 0 {
		return
	}
	s, _ := pg.ParseSegmentName(name)
	n := s.No(a.SegSize)
	runs := a.segments[s.Timeline]
	if k := len(runs) - 1; k >= 0 && runs[k].last+1 == n {
		runs[k].last, runs[k].lastObj = n, o
		return
	}
	if k := len(runs) - 1; k < 0 || runs[k].last+1 < n {
		a.segments[s.Timeline] = append(runs, segRun{first: n, last: n, lastObj: o})
		return
	}
	// Out of order: insert, then merge runs that now touch.
	i := sort.Search(len(runs), func(i int) bool { return runs[i].first > n })
	if i > 0 && n <= runs[i-1].last {
		return // already known
	}
	runs = slices.Insert(runs, i, segRun{first: n, last: n, lastObj: o})
	merged := runs[:0]
	for _, r := range runs {
		if k := len(merged) - 1; k >= 0 && merged[k].last+1 >= r.first {
			if r.last > merged[k].last {
				merged[k].last, merged[k].lastObj = r.last, r.lastObj
			}
			continue
		}
		merged = append(merged, r)
	}
	a.segments[s.Timeline] = merged
}

// runAt returns the run of timeline tli holding segment number n.
func (a *Archive) runAt(tli pg.Timeline, n uint64) (segRun, bool) {
	runs := a.segments[tli]
	i := sort.Search(len(runs), func(i int) bool { return runs[i].last >= n })
	if i < len(runs) && runs[i].first <= n {
		return runs[i], true
	}
	return segRun{}, false
}

// Has reports whether segment s is archived.
func (a *Archive) Has(s pg.Segment) bool {
	_, ok := a.runAt(s.Timeline, s.No(a.SegSize))
	return ok
}

// Newest returns the newest archived segment of from's timeline at or
// after from; ok is false when there is none.
func (a *Archive) Newest(from pg.Segment) (s pg.Segment, ok bool) {
	runs := a.segments[from.Timeline]
	if len(runs) == 0 || runs[len(runs)-1].last < from.No(a.SegSize) {
		return pg.Segment{}, false
	}
	return pg.SegmentNo(from.Timeline, runs[len(runs)-1].last, a.SegSize), true
}

// LoadHistory reads the stored history file of timeline tli (nil when it
// is encrypted and dec has no key); storage.ErrNotFound when none is stored.
func LoadHistory(ctx context.Context, st storage.Store, dec *codec.Decoder, tli pg.Timeline) ([]HistoryEntry, error) {
	return loadHistory(ctx, st, dec, WALPrefix+tli.HistoryFile())
}

// loadHistory reads one stored history file. An encrypted one without the
// key configured is skipped (nil): listing backups needs no key, and its
// timeline then looks unrelated to the others.
func loadHistory(ctx context.Context, st storage.Store, dec *codec.Decoder, key string) ([]HistoryEntry, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	name := key[strings.LastIndexByte(key, '/')+1:]
	if _, err := dec.WithMaxSize(1<<20).Decode(io.LimitReader(rc, 2<<20), &buf, name); err != nil {
		if errors.Is(err, codec.ErrNoKey) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return ParseHistory(buf.String())
}

// ParseHistory parses a timeline history file: one "parent<TAB>switch
// LSN<TAB>reason" line per ancestor, oldest first; comments start with #.
func ParseHistory(text string) ([]HistoryEntry, error) {
	var out []HistoryEntry
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %q: want parent timeline and switch LSN", line)
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("timeline history line %q: %v", line, err)
		}
		lsn, err := pg.ParseLSN(f[1])
		if err != nil {
			return nil, err
		}
		out = append(out, HistoryEntry{Parent: pg.Timeline(tli), Switch: lsn})
	}
	return out, sc.Err()
}

// Timelines lists the timelines with archived segments or a history file, in order.
func (a *Archive) Timelines() []pg.Timeline {
	seen := map[pg.Timeline]bool{}
	for t := range a.segments {
		seen[t] = true
	}
	for t := range a.History {
		seen[t] = true
	}
	var out []pg.Timeline
	for t := range seen {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Reach computes the window that backup b reaches on timeline tli: WAL is
// read on b's timeline from the backup's first segment, then on each
// following timeline from the segment where it branched off. ok is false
// when tli does not descend from b's timeline after b ended, or b's
// summary does not say where its WAL lies.
func (a *Archive) Reach(b BackupSummary, tli pg.Timeline) (w Window, ok bool) {
	w, _, ok = a.reach(b, tli)
	return w, ok
}

// reach is Reach that also returns the window's end LSN (0 for none).
func (a *Archive) reach(b BackupSummary, tli pg.Timeline) (w Window, end pg.LSN, ok bool) {
	stop, err := b.Stop()
	if err != nil {
		return Window{}, 0, false
	}
	w = Window{Timeline: tli, Backup: b.ID, StartLSN: b.StopLSN, StartTime: b.StopTime}
	if tli == b.Timeline {
		s, err := b.FirstSegment()
		if err != nil {
			return Window{}, 0, false
		}
		end = a.scan(&w, s.No(a.SegSize))
		w.Complete = w.EndWAL != "" && end >= stop
		return w, end, true
	}
	hist := a.History[tli]
	if len(hist) == 0 {
		return Window{}, 0, false
	}
	parent, begin := hist[len(hist)-1].Parent, hist[len(hist)-1].Switch
	if parent >= tli || begin < stop {
		return Window{}, 0, false // not a child, or it branched off before the backup ended
	}
	pw, pend, ok := a.reach(b, parent)
	if !ok {
		return Window{}, 0, false
	}
	first := begin.Segment(tli, a.SegSize)
	if !pw.Complete || pend < first.StartLSN(a.SegSize) {
		// Recovery stops on the parent before reaching the branch.
		pw.Timeline = tli
		return pw, pend, true
	}
	end = a.scan(&w, first.No(a.SegSize))
	if w.EndWAL == "" {
		// Nothing archived on tli yet: the parent's WAL reaches the branch.
		end = begin
		w.EndWAL, w.EndTime, w.EndLSN = pw.EndWAL, pw.EndTime, begin.String()
	}
	w.Complete = true
	return w, end, true
}

// scan extends w over the segments of w.Timeline stored without a gap from
// segment number first on, and returns where they end (0: none stored).
func (a *Archive) scan(w *Window, first uint64) pg.LSN {
	r, ok := a.runAt(w.Timeline, first)
	if !ok {
		return 0
	}
	end := pg.SegmentNo(w.Timeline, r.last, a.SegSize).EndLSN(a.SegSize)
	w.EndWAL = r.lastObj.Key[strings.LastIndexByte(r.lastObj.Key, '/')+1:]
	w.EndTime = r.lastObj.ModTime.UTC()
	w.EndLSN = end.String()
	return end
}

// Windows computes, for each timeline, the window from the oldest of
// backups (oldest first) that reaches it, skipping timelines no backup reaches.
func (a *Archive) Windows(backups []BackupSummary) []Window {
	var out []Window
	for _, tli := range a.Timelines() {
		for _, b := range backups {
			if w, ok := a.Reach(b, tli); ok && w.Complete {
				out = append(out, w)
				break
			}
		}
	}
	return out
}

// Latest returns the timeline recovery_target_timeline = 'latest' selects
// when recovery starts on timeline from: PostgreSQL looks for the history
// files of from+1, from+2, ... and takes the last one before the first
// missing. (It may not descend from the backup: see Reach.)
func (a *Archive) Latest(from pg.Timeline) pg.Timeline {
	t := from
	for {
		if _, ok := a.History[t+1]; !ok {
			return t
		}
		t++
	}
}
