package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// Kinds of problems verify reports.
const (
	ProblemMissingObject = "missing object"
	ProblemCorruptObject = "corrupt object"
	ProblemFileMismatch  = "file checksum mismatch"
	ProblemManifest      = "bad manifest"
	ProblemMissingWAL    = "missing WAL segment"
	ProblemWALGap        = "WAL gap"
)

// Problem is one thing that keeps a backup from restoring, named by the
// object key, file path or WAL segment it is about.
type Problem struct {
	Backup string `json:"backup"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
}

func (p Problem) String() string {
	s := fmt.Sprintf("backup %s: %s: %s", p.Backup, p.Kind, p.Name)
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// VerifyOptions says which backups to verify and how far.
type VerifyOptions struct {
	Backup   string // an ID or "latest"; empty: every complete backup
	ToLatest bool   // check WAL up to the newest archived segment, not only to the backup's stop
	Jobs     int    // objects downloaded at once
	Log      *slog.Logger
}

// BackupCheck is what verify found for one backup.
type BackupCheck struct {
	ID       string    `json:"id"`
	Objects  int       `json:"objects"`
	Files    int       `json:"files"`    // regular files whose bytes were checked
	Bytes    int64     `json:"bytes"`    // decoded bytes read
	WALFrom  string    `json:"wal_from"` // first segment required
	WALTo    string    `json:"wal_to"`   // last segment required
	Segments int       `json:"segments"` // segments required (and present unless reported)
	Problems []Problem `json:"problems"`
}

// VerifyReport is the outcome of Verify; OK when no backup has a problem.
type VerifyReport struct {
	Backups []BackupCheck `json:"backups"`
	OK      bool          `json:"ok"`
}

// Verify downloads every object of the chosen backups and checks it against
// the manifest, re-assembles every file's checksum from its parts, and
// checks that the WAL the backup needs is archived without a gap. Problems
// found are reported, not returned as errors; an error means verify itself
// could not run (store down, unknown backup).
func Verify(ctx context.Context, st storage.Store, dec *codec.Decoder, o VerifyOptions) (*VerifyReport, error) {
	if o.Jobs < 1 {
		o.Jobs = 1
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	list, _, err := catalog.ListBackups(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("listing backups in %s: %w", st, err)
	}
	chosen, err := chooseToVerify(list, o.Backup)
	if err != nil {
		return nil, err
	}
	if len(chosen) == 0 {
		// Nothing verified is not "all is well".
		return nil, fmt.Errorf("no complete backup in %s to verify: see walship backup list", st)
	}
	// One archive for every backup: a repository has one segment size.
	arch, err := catalog.LoadArchive(ctx, st, dec, chosen[0].WALSegmentSize)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Backups: []BackupCheck{}, OK: true}
	for _, b := range chosen {
		m, err := catalog.LoadManifest(ctx, st, dec, b.ID)
		if errors.Is(err, codec.ErrCorrupt) {
			// A damaged manifest is this backup's problem; others still
			// get checked.
			rep.OK = false
			rep.Backups = append(rep.Backups, BackupCheck{ID: b.ID, Problems: []Problem{{Backup: b.ID, Kind: ProblemManifest,
				Name: catalog.ManifestKey(b.ID), Detail: err.Error()}}})
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := checkKey(m, dec); err != nil {
			return nil, err
		}
		o.Log.Info("verifying", "backup", m.ID, "objects", len(m.Objects), "files", len(m.Files))
		c, err := verifyData(ctx, st, dec, m, o.Jobs, o.Log)
		if err != nil {
			return nil, err
		}
		c.WALFrom, c.WALTo, c.Segments, c.Problems = verifyWAL(m.BackupSummary, arch, o.ToLatest, c.Problems)
		if len(c.Problems) > 0 {
			rep.OK = false
		} else {
			c.Problems = []Problem{}
		}
		rep.Backups = append(rep.Backups, *c)
	}
	return rep, nil
}

// chooseToVerify picks one backup by ID, the newest ("latest", by stop
// time), or all of them.
func chooseToVerify(list []catalog.BackupSummary, id string) ([]catalog.BackupSummary, error) {
	switch id {
	case "":
		return list, nil
	case "latest":
		if len(list) == 0 {
			return nil, nil
		}
		newest := list[0]
		for _, b := range list[1:] {
			if b.StopTime.After(newest.StopTime) {
				newest = b
			}
		}
		return []catalog.BackupSummary{newest}, nil
	}
	for _, b := range list {
		if b.ID == id {
			return []catalog.BackupSummary{b}, nil
		}
	}
	return nil, fmt.Errorf("no complete backup %s: see walship backup list", id)
}

// segRange is a run of segments one timeline must provide.
type segRange struct {
	tli         pg.Timeline
	first, last pg.Segment // inclusive; empty when last is before first
}

// verifyWAL checks that every segment from the backup's start to its stop
// (or, with toLatest, to the newest segment archived along the latest
// timeline descending from the backup) is archived.
func verifyWAL(b catalog.BackupSummary, arch *catalog.Archive, toLatest bool, problems []Problem) (from, to string, count int, _ []Problem) {
	ranges, err := walRanges(b, arch, toLatest)
	if err != nil {
		return "", "", 0, append(problems, Problem{Backup: b.ID, Kind: ProblemManifest, Name: "start/stop WAL", Detail: err.Error()})
	}
	seg := arch.SegSize
	for _, r := range ranges {
		if r.last.No(seg) < r.first.No(seg) {
			continue
		}
		if from == "" {
			from = r.first.Name()
		}
		to = r.last.Name()
		var missing []pg.Segment
		flush := func() {
			switch len(missing) {
			case 0:
				return
			case 1:
				problems = append(problems, Problem{Backup: b.ID, Kind: ProblemMissingWAL, Name: missing[0].Name(),
					Detail: "not in the archive"})
			default:
				problems = append(problems, Problem{Backup: b.ID, Kind: ProblemWALGap,
					Name:   missing[0].Name() + ".." + missing[len(missing)-1].Name(),
					Detail: fmt.Sprintf("%d segments not in the archive", len(missing))})
			}
			missing = nil
		}
		for s := r.first; s.No(seg) <= r.last.No(seg); s = s.Next(seg) {
			count++
			if !arch.Has(s) {
				missing = append(missing, s)
			} else {
				flush()
			}
		}
		flush()
	}
	return from, to, count, problems
}

// walRanges lists the segments recovery from b reads, per timeline. A
// switch to a new timeline at LSN X means the new timeline's segments from
// X's segment on (PostgreSQL reads the newest timeline that has begun).
func walRanges(b catalog.BackupSummary, arch *catalog.Archive, toLatest bool) ([]segRange, error) {
	start, err := b.FirstSegment()
	if err != nil {
		return nil, err
	}
	stop, err := b.LastSegment()
	if err != nil {
		return nil, err
	}
	if !toLatest {
		return []segRange{{tli: b.Timeline, first: start, last: stop}}, nil
	}
	target := b.Timeline
	for _, tli := range arch.Timelines() {
		if _, ok := arch.Reach(b, tli); ok && tli > target {
			target = tli
		}
	}
	// The path: b's timeline, then each descendant up to target, with the
	// LSN where each one began.
	path, begins := []pg.Timeline{b.Timeline}, []pg.LSN{0}
	if target != b.Timeline {
		hist := arch.History[target]
		i := 0
		for i < len(hist) && hist[i].Parent != b.Timeline {
			i++
		}
		for ; i < len(hist); i++ {
			next := target
			if i+1 < len(hist) {
				next = hist[i+1].Parent
			}
			path, begins = append(path, next), append(begins, hist[i].Switch)
		}
	}
	seg := arch.SegSize
	var out []segRange
	for k, tli := range path {
		first := start
		if k > 0 {
			first = begins[k].Segment(tli, seg)
		}
		first.Timeline = tli
		var last pg.Segment
		if k+1 < len(path) {
			last = begins[k+1].Segment(tli, seg).Prev(seg)
		} else {
			var ok bool
			if last, ok = arch.Newest(first); !ok {
				last = first.Prev(seg) // nothing archived: an empty range
			}
			if k == 0 && last.No(seg) < stop.No(seg) {
				last = stop // the backup's own WAL is needed even when missing
			}
		}
		last.Timeline = tli
		out = append(out, segRange{tli: tli, first: first, last: last})
	}
	return out, nil
}

// verifyData downloads every object of m and checks objects and files.
// Objects that share a file form a chain (files span consecutive objects)
// that one worker decodes in order, so each file's checksum is computed
// while streaming, and whose next objects download meanwhile; chains run
// in parallel, and downloads take jobs slots in all.
func verifyData(ctx context.Context, st storage.Store, dec *codec.Decoder, m *catalog.Manifest, jobs int, log *slog.Logger) (*BackupCheck, error) {
	c := &BackupCheck{ID: m.ID, Objects: len(m.Objects)}
	var mu sync.Mutex
	report := func(p Problem) { c.Problems = append(c.Problems, p) } // before the workers start
	parts := make([][]target, len(m.Objects))
	group := newUnion(len(m.Objects))
	remaining := make([]int, len(m.Files)) // parts of each file still to read
	for i, f := range m.Files {
		if f.Type != catalog.TypeFile {
			continue
		}
		c.Files++
		if err := m.CheckParts(f); err != nil {
			report(Problem{Backup: m.ID, Kind: ProblemManifest, Name: f.Path, Detail: err.Error()})
			continue
		}
		if len(f.Parts) == 0 {
			if f.Size != 0 || f.Checksum != codec.Checksum(nil) {
				report(fileMismatch(m.ID, f, 0, codec.Checksum(nil)))
			}
			continue
		}
		var off int64
		for _, p := range f.Parts {
			parts[p.Object] = append(parts[p.Object], target{file: i, part: p, fileOff: off})
			off += p.Length
			group.join(f.Parts[0].Object, p.Object)
		}
		remaining[i] = len(f.Parts)
	}
	var chains [][]int     // in the order of their first objects
	first := map[int]int{} // root -> index in chains
	for n := range m.Objects {
		r := group.root(n)
		i, ok := first[r]
		if !ok {
			i, first[r] = len(chains), len(chains)
			chains = append(chains, nil)
		}
		chains[i] = append(chains[i], n)
	}
	var read int64
	slots := make(chan struct{}, jobs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, objs := range chains {
		g.Go(func() error {
			v := &chainVerifier{m: m, parts: parts, remaining: remaining, log: log, slots: slots, states: map[int]*fileState{}}
			n, err := v.run(gctx, st, dec, objs)
			mu.Lock()
			defer mu.Unlock()
			read += n
			c.Problems = append(c.Problems, v.problems...)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	c.Bytes = read
	sort.SliceStable(c.Problems, func(i, j int) bool { return c.Problems[i].Name < c.Problems[j].Name })
	return c, ctx.Err()
}

func fileMismatch(id string, f catalog.BackupFile, n int64, sum string) Problem {
	return Problem{Backup: id, Kind: ProblemFileMismatch, Name: f.Path,
		Detail: fmt.Sprintf("its parts hold %d bytes with checksum %s, the manifest says %d bytes with %s", n, sum, f.Size, f.Checksum)}
}

// union is a union-find over object indexes.
type union []int

func newUnion(n int) union {
	u := make(union, n)
	for i := range u {
		u[i] = i
	}
	return u
}

func (u union) root(i int) int {
	for u[i] != i {
		u[i] = u[u[i]]
		i = u[i]
	}
	return i
}

func (u union) join(a, b int) { u[u.root(a)] = u.root(b) }

// fileState is the running checksum of a file being read.
type fileState struct {
	h      hash.Hash
	n      int64
	broken bool // one of its objects failed: its checksum means nothing
}

// chainVerifier reads the objects of one chain in order.
type chainVerifier struct {
	m         *catalog.Manifest
	parts     [][]target
	remaining []int // shared, but each file belongs to one chain only
	log       *slog.Logger
	slots     chan struct{} // downloads in memory, shared by all chains
	states    map[int]*fileState
	problems  []Problem
}

func (v *chainVerifier) report(p Problem) { v.problems = append(v.problems, p) }

func (v *chainVerifier) run(ctx context.Context, st storage.Store, dec *codec.Decoder, objs []int) (int64, error) {
	sort.Ints(objs)
	ahead := v.prefetch(ctx, st, objs)
	defer ahead.stop()
	var total int64
	for i, n := range objs {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		ts := v.parts[n]
		sort.Slice(ts, func(i, j int) bool { return ts[i].part.Offset < ts[j].part.Offset })
		w := &hashWriter{v: v, parts: ts}
		err := v.object(dec, n, ahead.take(i), w)
		total += w.pos
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, codec.ErrCorrupt) {
				return total, fmt.Errorf("reading object %s of backup %s: %w", v.m.Objects[n].Key, v.m.ID, err)
			}
			// The parts not yet read cannot be checked.
			for _, t := range ts[w.next:] {
				v.state(t.file).broken = true
				v.partDone(t.file)
			}
		}
	}
	// A file begun but not finished was never compared: say so rather
	// than pass it silently.
	for file, s := range v.states {
		if !s.broken {
			v.report(fileMismatch(v.m.ID, v.m.Files[file], s.n, "(not read to its end)"))
		}
	}
	return total, nil
}

// object decodes object n, downloaded as f, through w and reports what is
// wrong with it; errors it returns are failures of the store, not of the backup.
func (v *chainVerifier) object(dec *codec.Decoder, n int, f fetched, w *hashWriter) error {
	obj := v.m.Objects[n]
	if errors.Is(f.err, storage.ErrNotFound) {
		v.report(Problem{Backup: v.m.ID, Kind: ProblemMissingObject, Name: obj.Key, Detail: "not in the repository"})
		return f.err
	}
	if f.err != nil {
		return f.err
	}
	h, err := dec.WithMaxSize(obj.Size).Decode(bytes.NewReader(f.data), w, obj.Key)
	if err == nil && (h.Size != obj.Size || (obj.Checksum != "" && h.Checksum != obj.Checksum)) {
		err = fmt.Errorf("%w: object holds %d bytes with checksum %s, the manifest says %d bytes with %s",
			codec.ErrCorrupt, h.Size, h.Checksum, obj.Size, obj.Checksum)
	}
	if errors.Is(err, codec.ErrCorrupt) {
		v.report(Problem{Backup: v.m.ID, Kind: ProblemCorruptObject, Name: obj.Key, Detail: err.Error()})
	}
	return err
}

// fetched is one downloaded object, as stored.
type fetched struct {
	data []byte
	err  error
}

// prefetcher downloads a chain's objects ahead of the worker that decodes
// them in order, so that a long chain (big files span many objects) still
// downloads jobs objects at once. Each download holds a slot, shared by all
// chains, from its start until the worker is done with it: at most jobs
// stored objects are in memory. Slots are taken in the chain's order, so
// the object a worker waits for always has one.
type prefetcher struct {
	slots   chan struct{}
	results []chan fetched
	taken   int
	cancel  context.CancelFunc
	started chan int // how many downloads the producer started, once it ends
}

func (v *chainVerifier) prefetch(ctx context.Context, st storage.Store, objs []int) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{slots: v.slots, results: make([]chan fetched, len(objs)), cancel: cancel, started: make(chan int, 1)}
	for i := range p.results {
		p.results[i] = make(chan fetched, 1)
	}
	go func() {
		for i, n := range objs {
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				p.started <- i
				return
			}
			go func() { p.results[i] <- download(ctx, st, v.m.Objects[n], v.log) }()
		}
		p.started <- len(objs)
	}()
	return p
}

// take waits for the i-th object; the slot of the one before is freed.
func (p *prefetcher) take(i int) fetched {
	if p.taken > 0 {
		<-p.slots
	}
	p.taken = i + 1
	return <-p.results[i]
}

// stop cancels the downloads not taken and frees every slot held.
func (p *prefetcher) stop() {
	p.cancel()
	started := <-p.started
	for i := p.taken; i < started; i++ {
		<-p.results[i]
	}
	for range started - p.taken + min(p.taken, 1) { // the last one taken holds its slot still
		<-p.slots
	}
}

// download reads a stored object into memory, bounded by the size the
// manifest records (plus slack: a bigger object fails to decode anyway).
// storage.Load reads it again when the read breaks off midway.
func download(ctx context.Context, st storage.Store, obj catalog.BackupObject, log *slog.Logger) fetched {
	limit := obj.StoredSize + 1<<20
	if obj.StoredSize <= 0 {
		limit = 64 << 20
	}
	var data []byte
	err := storage.Load(ctx, st, obj.Key, func(r io.Reader) error {
		var err error
		data, err = io.ReadAll(io.LimitReader(r, limit))
		return err
	}, storage.OnRetry(func(attempt int, err error) {
		log.Warn("download interrupted, retrying", "object", obj.Key, "attempt", attempt, "err", err)
	}))
	if err != nil {
		return fetched{err: err}
	}
	return fetched{data: data}
}

func (v *chainVerifier) state(file int) *fileState {
	s := v.states[file]
	if s == nil {
		s = &fileState{h: codec.NewChecksum()}
		v.states[file] = s
	}
	return s
}

// partDone counts one part of file as read and checks the file after its last.
func (v *chainVerifier) partDone(file int) {
	v.remaining[file]--
	if v.remaining[file] > 0 {
		return
	}
	s, f := v.state(file), v.m.Files[file]
	delete(v.states, file)
	if s.broken {
		return // the object's problem is reported; the file's bytes were not all there
	}
	if sum := codec.ChecksumOf(s.h); s.n != f.Size || sum != f.Checksum {
		v.report(fileMismatch(v.m.ID, f, s.n, sum))
	}
}

// hashWriter receives an object's decoded bytes and feeds each part's run
// to its file's checksum; bytes of no part (vanished files) are skipped.
type hashWriter struct {
	v     *chainVerifier
	parts []target // by offset
	pos   int64
	next  int
}

func (w *hashWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 && w.next < len(w.parts) {
		t := w.parts[w.next]
		end := t.part.Offset + t.part.Length
		if w.pos < t.part.Offset {
			skip := min(int64(len(p)), t.part.Offset-w.pos)
			p, w.pos = p[skip:], w.pos+skip
			continue
		}
		n := min(int64(len(p)), end-w.pos)
		s := w.v.state(t.file)
		s.h.Write(p[:n])
		s.n += n
		p, w.pos = p[n:], w.pos+n
		if w.pos == end {
			w.next++
			w.v.partDone(t.file)
		}
	}
	// Empty parts at the end are done once the object is read to them.
	for w.next < len(w.parts) && w.parts[w.next].part.Length == 0 && w.parts[w.next].part.Offset <= w.pos {
		w.v.partDone(w.parts[w.next].file)
		w.next++
	}
	w.pos += int64(len(p))
	return total, nil
}
