// Package restore takes data out of the repository: WAL fetch for
// restore_command, with a prefetch spool.
package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

// ErrNotInArchive: the repository really does not hold the file. Only this
// may be reported to PostgreSQL as "not found" (exit 1): anything else would
// make it end recovery early, at the wrong point.
var ErrNotInArchive = errors.New("not in the archive")

// Fetcher fetches archived WAL files.
type Fetcher struct {
	Store   storage.Store
	Decoder *codec.Decoder
	// Budget bounds the retries of a fetch that failed mid-stream (the store
	// wrapper already retries opening). Default 1m.
	Budget time.Duration
	Log    *slog.Logger
}

// SpoolDir is the prefetch spool for a restore destination: beside DEST in
// pg_wal, so taking a file from it is a rename on the same filesystem.
func SpoolDir(dest string) string {
	return filepath.Join(filepath.Dir(dest), "walship", "prefetch")
}

// Fetch writes the archived file name to dest atomically, verified. It
// takes the file from the prefetch spool when it is there, or about to be.
func (f *Fetcher) Fetch(ctx context.Context, name, dest string) error {
	key, err := catalog.WALKey(name)
	if err != nil {
		return err
	}
	if TakeSpooled(ctx, name, dest) {
		return nil
	}
	return f.fetchObject(ctx, key, name, dest)
}

// TakeSpooled moves a prefetched copy of name to dest and reports whether
// there was one. It needs no store, so restore_command can answer from the
// spool before setting up a connection. It also tells the prefetcher which
// segment recovery asked for last.
func TakeSpooled(ctx context.Context, name, dest string) bool {
	spool := SpoolDir(dest)
	if pg.KindOf(name) != pg.KindSegment {
		return false
	}
	markLast(spool, name)
	if !sameBoot(spool) {
		// The machine restarted since these files were written without
		// fsync: they may be torn. Start over.
		clearSpool(spool)
		return false
	}
	return takeSpooled(ctx, spool, name, dest)
}

// takeSpooled moves a prefetched copy of name to dest. When a live
// prefetcher is downloading name right now, it waits for that download
// rather than starting a second one.
func takeSpooled(ctx context.Context, spool, name, dest string) bool {
	spooled := filepath.Join(spool, name)
	marker := inflightMarker(spool, name)
	for {
		if os.Rename(spooled, dest) == nil {
			return true
		}
		if _, err := os.Stat(marker); err != nil || !prefetcherAlive(spool) {
			return false
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}

// fetchObject downloads and decodes one object. The store wrapper already
// retried opening it; here only a failure in the middle of the download is
// retried, within the budget. Anything else (a damaged object, a wrong key, a
// destination that cannot be written) will not heal and fails at once.
func (f *Fetcher) fetchObject(ctx context.Context, key, name, dest string) error {
	budget := f.Budget
	if budget == 0 {
		budget = time.Minute
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := f.fetchOnce(ctx, key, name, dest, false)
		var midStream *codec.SourceError
		switch {
		case err == nil:
			return nil
		case errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("%s: %w", name, ErrNotInArchive)
		case errors.Is(err, codec.ErrCorrupt):
			return fmt.Errorf("%s in %s (%s) is damaged and cannot be used: %w. Restore it from another copy of the repository, or choose a recovery target before it",
				name, f.Store, key, err)
		case !errors.As(err, &midStream) || ctx.Err() != nil:
			return err
		}
		if time.Since(start) > budget {
			return fmt.Errorf("fetching %s from %s was interrupted %d times over %s, giving up: %w", name, f.Store, attempt, time.Since(start).Round(time.Second), err)
		}
		if f.Log != nil {
			f.Log.Warn("download interrupted, retrying", "file", name, "attempt", attempt, "err", err)
		}
		sleep := time.Duration(rand.Int64N(int64(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)) + 1))
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fetchOnce downloads one object into dest, fsynced only when durable.
// restore_command's file needs no fsync: PostgreSQL makes it durable itself
// when it keeps it. Spooled files need none either: the spool is discarded
// when the machine has restarted since it was filled (see sameBoot).
func (f *Fetcher) fetchOnce(ctx context.Context, key, name, dest string, durable bool) error {
	rc, err := f.Store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = f.Decoder.DecodeToFile(rc, dest, name, durable)
	return err
}

// Prefetch keeps the spool filled with the n segments that follow the
// newest one PostgreSQL asked for (name, then whatever later calls of Fetch
// record), downloading up to parallel at once and dropping segments recovery
// has passed. It returns when the archive has no next segment yet or when
// recovery has not moved for a while. One prefetcher per spool runs at a
// time; another call returns at once.
func (f *Fetcher) Prefetch(ctx context.Context, name, dest string, n, parallel int) error {
	if pg.KindOf(name) != pg.KindSegment || n <= 0 {
		return nil
	}
	spool := SpoolDir(dest)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	unlock, ok := tryLock(filepath.Join(spool, ".lock"))
	if !ok {
		return nil
	}
	defer unlock()
	if !sameBoot(spool) {
		clearSpool(spool)
	}
	markBoot(spool)

	segSize := uint32(16 << 20)
	if id, err := catalog.LoadIdentity(ctx, f.Store); err == nil && id.WALSegmentSize != 0 {
		segSize = id.WALSegmentSize
	}
	idleSince := time.Now()
	for ctx.Err() == nil {
		current := lastRequested(spool, name)
		dropOlder(spool, current)
		seg, err := pg.ParseSegmentName(current)
		if err != nil {
			return err
		}
		var missing []string
		for range n {
			seg = seg.Next(segSize)
			if _, err := os.Stat(filepath.Join(spool, seg.Name())); err != nil {
				missing = append(missing, seg.Name())
			}
		}
		if len(missing) == 0 {
			if time.Since(idleSince) > 2*time.Second {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		idleSince = time.Now()
		if end := f.fetchAll(ctx, spool, missing, parallel); end {
			return nil
		}
	}
	return ctx.Err()
}

// fetchAll downloads names into dir with parallel workers. Once a name is
// not in the archive, later names are not started (they cannot exist yet),
// while downloads already running finish; it then reports the end.
func (f *Fetcher) fetchAll(ctx context.Context, dir string, names []string, parallel int) (end bool) {
	var ended atomic.Bool
	sem := make(chan struct{}, max(parallel, 1))
	for _, name := range names {
		sem <- struct{}{}
		if ended.Load() || ctx.Err() != nil {
			<-sem
			break
		}
		marker := inflightMarker(dir, name)
		os.WriteFile(marker, nil, 0o600)
		go func() {
			defer func() { os.Remove(marker); <-sem }()
			key, _ := catalog.WALKey(name)
			err := f.fetchOnce(ctx, key, name, filepath.Join(dir, name), false)
			if errors.Is(err, storage.ErrNotFound) {
				ended.Store(true)
			} else if err != nil {
				ended.Store(true) // let the foreground fetch retry and report it
				if f.Log != nil {
					f.Log.Warn("prefetch failed; the segment will be fetched when asked for", "file", name, "err", err)
				}
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	return ended.Load()
}

func inflightMarker(spool, name string) string { return filepath.Join(spool, ".inflight-"+name) }

// markLast records the newest segment PostgreSQL asked for, for the prefetcher.
func markLast(spool, name string) {
	if os.MkdirAll(spool, 0o700) != nil {
		return
	}
	tmp := filepath.Join(spool, ".last.tmp")
	if os.WriteFile(tmp, []byte(name), 0o600) == nil {
		os.Rename(tmp, filepath.Join(spool, ".last"))
	}
}

func lastRequested(spool, fallback string) string {
	b, err := os.ReadFile(filepath.Join(spool, ".last"))
	if err != nil || pg.KindOf(string(b)) != pg.KindSegment {
		return fallback
	}
	return string(b)
}

// PrefetcherAlive reports whether a prefetcher is serving the spool of dest.
func PrefetcherAlive(dest string) bool { return prefetcherAlive(SpoolDir(dest)) }

// dropOlder removes spooled segments that sort before name: recovery has
// moved past them (or switched timeline) and will not ask again. name itself
// stays: Fetch may be about to take it.
func dropOlder(spool, name string) {
	ents, _ := os.ReadDir(spool)
	for _, e := range ents {
		if pg.KindOf(e.Name()) == pg.KindSegment && e.Name()[8:] < name[8:] {
			os.Remove(filepath.Join(spool, e.Name()))
		}
	}
}
