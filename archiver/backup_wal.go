package archiver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// segSpan is the segments first..last (both included) of one timeline, as
// segment numbers: start LSN / segment size.
type segSpan struct {
	tli         pg.Timeline
	first, last uint64
}

func (s segSpan) segment(n uint64, segSize uint32) pg.Segment {
	return pg.SegmentNo(s.tli, n, segSize)
}

// backupWAL lists the WAL segments a restore of the backup replays up to
// its stop LSN, and names the last one in m.StopWAL. A backup of a standby
// that followed a promotion while it ran stops on a later timeline than it
// started on.
func backupWAL(ctx context.Context, conn *pgx.Conn, st storage.Store, pgdata string, m *catalog.Manifest) ([]segSpan, error) {
	latest := m.Timeline
	if m.FromStandby {
		// pg_backup_stop took a standby's stop LSN from its minimum recovery
		// point, whose timeline can only have moved on since.
		var tli int64
		if err := conn.QueryRow(ctx, "SELECT min_recovery_end_timeline FROM pg_control_recovery()").Scan(&tli); err != nil {
			return nil, fmt.Errorf("asking the standby for its timeline: %w", err)
		}
		latest = max(latest, pg.Timeline(tli))
	}
	var hist []catalog.HistoryEntry
	if latest != m.Timeline {
		var err error
		if hist, err = timelineHistory(ctx, st, pgdata, latest); err != nil {
			return nil, err
		}
	}
	start, err := m.FirstSegment()
	if err != nil {
		return nil, err
	}
	start.Timeline = m.Timeline
	stop, err := m.Stop()
	if err != nil {
		return nil, err
	}
	spans, err := walSpans(start, stop, latest, hist, m.WALSegmentSize)
	if err != nil {
		return nil, err
	}
	last := spans[len(spans)-1]
	m.StopWAL = last.segment(last.last, m.WALSegmentSize).Name()
	return spans, nil
}

// timelineHistory reads the history file of timeline tli: from pg_wal,
// where a server keeps the history of every timeline it followed, else
// from the repository.
func timelineHistory(ctx context.Context, st storage.Store, pgdata string, tli pg.Timeline) ([]catalog.HistoryEntry, error) {
	name := tli.HistoryFile()
	data, err := os.ReadFile(filepath.Join(pgdata, "pg_wal", name))
	if err == nil {
		return catalog.ParseHistory(string(data))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	hist, err := catalog.LoadHistory(ctx, st, &codec.Decoder{}, tli)
	if err == nil && hist == nil {
		err = errors.New("it is encrypted")
	}
	if err != nil {
		return nil, fmt.Errorf("the server moved to timeline %d during the backup, but its history file %s is neither in pg_wal nor readable in %s (%v): the backup's WAL cannot be determined", tli, name, st, err)
	}
	return hist, nil
}

// walSpans lists the segments from start to the one holding the last byte
// before stopLSN. hist, the history of timeline latest (at or after the
// stop's), leads from start's timeline to latest when they differ. Each
// timeline is read from the segment where it began: that segment exists on
// both timelines, and PostgreSQL archives and replays the new timeline's
// copy (the parent's is archived only as .partial).
func walSpans(start pg.Segment, stopLSN pg.LSN, latest pg.Timeline, hist []catalog.HistoryEntry, segSize uint32) ([]segSpan, error) {
	type leg struct {
		tli   pg.Timeline
		begin pg.LSN
	}
	path := []leg{{start.Timeline, start.StartLSN(segSize)}}
	if latest != start.Timeline {
		i := slices.IndexFunc(hist, func(e catalog.HistoryEntry) bool { return e.Parent == start.Timeline })
		if i < 0 {
			return nil, fmt.Errorf("the history of timeline %d does not lead from timeline %d, where the backup started", latest, start.Timeline)
		}
		for ; i < len(hist); i++ {
			next := latest
			if i+1 < len(hist) {
				next = hist[i+1].Parent
			}
			path = append(path, leg{next, hist[i].Switch})
		}
	}
	if stopLSN <= path[0].begin {
		return nil, fmt.Errorf("the backup's stop LSN %s is not after its start segment %s", stopLSN, start.Name())
	}
	// The stop LSN ends the backup's last record: the segment holding the
	// byte before it is the last one needed (what pg_walfile_name computes).
	startSeg, stopSeg := path[0].begin.SegNo(segSize), (stopLSN - 1).SegNo(segSize)
	// Like PostgreSQL, read each segment from the newest timeline begun by
	// that segment.
	var spans []segSpan
	for j, l := range path {
		s := segSpan{tli: l.tli, first: max(l.begin.SegNo(segSize), startSeg), last: stopSeg}
		if j+1 < len(path) {
			next := path[j+1].begin.SegNo(segSize)
			if next == 0 {
				continue
			}
			s.last = min(s.last, next-1)
		}
		if s.first <= s.last {
			spans = append(spans, s)
		}
	}
	return spans, nil
}

// walGate finds which of a backup's segments the repository holds. It
// lists the folders of wal/ (one per timeline and 4 GiB of WAL), not each
// segment, and lists again only the folders that still lack one.
type walGate struct {
	st      storage.Store
	spans   []segSpan
	segSize uint32
	seen    *catalog.Archive // runs of the segments found so far
	folders []string         // folders with a missing segment at the last check
}

func newWALGate(st storage.Store, spans []segSpan, segSize uint32) *walGate {
	g := &walGate{st: st, spans: spans, segSize: segSize, seen: catalog.NewArchive(segSize, nil)}
	g.folders = g.missing(0).folders
	return g
}

// missingWAL is what a check did not find: how many segments, the first
// few names, and the folders that hold them.
type missingWAL struct {
	count   int
	names   []string
	folders []string
}

// check lists the folders that lacked a segment and returns what is still missing.
func (g *walGate) check(ctx context.Context) (missingWAL, error) {
	for _, dir := range g.folders {
		objs, _, err := g.st.ListDir(ctx, dir)
		if err != nil {
			return missingWAL{}, err
		}
		for _, o := range objs {
			g.seen.Add(o)
		}
	}
	m := g.missing(missingNamesShown)
	g.folders = m.folders
	return m, nil
}

// missingNamesShown is how many missing segments an error names.
const missingNamesShown = 5

// missing walks the spans for segments not seen yet, keeping up to names of them.
func (g *walGate) missing(names int) missingWAL {
	var m missingWAL
	for _, sp := range g.spans {
		for n := sp.first; n <= sp.last; n++ {
			s := sp.segment(n, g.segSize)
			if g.seen.Has(s) {
				continue
			}
			m.count++
			name := s.Name()
			if len(m.names) < names {
				m.names = append(m.names, name)
			}
			if dir := walFolder(name); len(m.folders) == 0 || m.folders[len(m.folders)-1] != dir {
				m.folders = append(m.folders, dir)
			}
		}
	}
	return m
}

// walFolder is the folder of wal/ that holds segment name.
func walFolder(name string) string {
	key, _ := catalog.WALKey(name)
	return key[:strings.LastIndexByte(key, '/')+1]
}

// waitForWAL waits until the store holds every segment of spans, polling
// often at first (archiving one segment takes a fraction of a second, and
// the backup waits for it), then once a second, until timeout.
func waitForWAL(ctx context.Context, st storage.Store, spans []segSpan, segSize uint32, timeout time.Duration, log *slog.Logger) error {
	gate := newWALGate(st, spans, segSize)
	const firstWait = 20 * time.Millisecond
	deadline := time.Now().Add(timeout)
	for wait := firstWait; ; wait = min(wait*3/2, time.Second) {
		missing, err := gate.check(ctx)
		if err != nil {
			return fmt.Errorf("checking that the backup's WAL is archived: %w", err)
		}
		if missing.count == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return missingWALError(st, spans, segSize, missing, timeout)
		}
		if wait == firstWait { // say it once
			log.Info("waiting for the backup's WAL segments to be archived", "missing", missing.count, "first", missing.names[0])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func missingWALError(st storage.Store, spans []segSpan, segSize uint32, m missingWAL, timeout time.Duration) error {
	what := "WAL segment " + m.names[0] + " of this backup is"
	if m.count > 1 {
		what = fmt.Sprintf("%d WAL segments of this backup are", m.count)
	}
	list := ""
	if m.count > 1 {
		list = ": " + strings.Join(m.names, ", ")
		if more := m.count - len(m.names); more > 0 {
			list += fmt.Sprintf(" and %d more", more)
		}
	}
	first, last := spans[0], spans[len(spans)-1]
	need := "A restore needs it"
	if from, to := first.segment(first.first, segSize).Name(), last.segment(last.last, segSize).Name(); from != to {
		need = "A restore needs every segment from " + from + " to " + to
	}
	return fmt.Errorf("%s not in %s after %s%s. %s, so the backup is not complete and was not recorded. Check archive_command (walship wal-push) and the server log, then run the backup again",
		what, st, timeout, list, need)
}
