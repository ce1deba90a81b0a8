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
// takes the file from the prefetch spool when it is there.
func (f *Fetcher) Fetch(ctx context.Context, name, dest string) error {
	key, err := catalog.WALKey(name)
	if err != nil {
		return err
	}
	spooled := filepath.Join(SpoolDir(dest), name)
	if err := os.Rename(spooled, dest); err == nil {
		return nil
	}
	return f.fetchObject(ctx, key, name, dest)
}

// fetchObject downloads and decodes one object, retrying transport failures
// within the budget. A corrupt object is not retried: it will not heal.
func (f *Fetcher) fetchObject(ctx context.Context, key, name, dest string) error {
	budget := f.Budget
	if budget == 0 {
		budget = time.Minute
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := f.fetchOnce(ctx, key, name, dest)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("%s: %w", name, ErrNotInArchive)
		case errors.Is(err, codec.ErrCorrupt):
			return fmt.Errorf("%s in %s (%s) is damaged and cannot be used: %w. Restore it from another copy of the repository, or choose a recovery target before it",
				name, f.Store, key, err)
		case errors.Is(err, storage.ErrPermanent), errors.Is(err, codec.ErrNoKey), ctx.Err() != nil:
			return err
		}
		if time.Since(start) > budget {
			return fmt.Errorf("fetching %s from %s failed %d times over %s, giving up: %w", name, f.Store, attempt, time.Since(start).Round(time.Second), err)
		}
		if f.Log != nil {
			f.Log.Warn("fetch failed, retrying", "file", name, "attempt", attempt, "err", err)
		}
		sleep := time.Duration(rand.Int64N(int64(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)) + 1))
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *Fetcher) fetchOnce(ctx context.Context, key, name, dest string) error {
	rc, err := f.Store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = f.Decoder.DecodeToFile(rc, dest, name)
	return err
}

// Prefetch fills the spool with up to n segments following name, in
// parallel, and drops spooled segments older than name. It stops at the
// first segment the archive does not have yet. One prefetcher per spool runs
// at a time; a second call returns at once.
func (f *Fetcher) Prefetch(ctx context.Context, name, dest string, n, parallel int) error {
	seg, err := pg.ParseSegmentName(name)
	if err != nil || pg.KindOf(name) != pg.KindSegment || n <= 0 {
		return err
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
	dropOlder(spool, name)

	segSize := uint32(16 << 20)
	if id, err := catalog.LoadIdentity(ctx, f.Store); err == nil && id.WALSegmentSize != 0 {
		segSize = id.WALSegmentSize
	}
	var names []string
	next := seg
	for range n {
		next = next.Next(segSize)
		if _, err := os.Stat(filepath.Join(spool, next.Name())); err != nil {
			names = append(names, next.Name())
		}
	}
	return f.fetchAll(ctx, spool, names, parallel)
}

// fetchAll downloads names into dir with parallel workers; once a name is not
// in the archive, later names are not started (they cannot exist yet either),
// while downloads already running finish.
func (f *Fetcher) fetchAll(ctx context.Context, dir string, names []string, parallel int) error {
	var ended atomic.Bool
	sem := make(chan struct{}, max(parallel, 1))
	for _, name := range names {
		sem <- struct{}{}
		if ended.Load() || ctx.Err() != nil {
			<-sem
			break
		}
		go func() {
			defer func() { <-sem }()
			key, _ := catalog.WALKey(name)
			err := f.fetchOnce(ctx, key, name, filepath.Join(dir, name))
			if errors.Is(err, storage.ErrNotFound) {
				ended.Store(true)
			} else if err != nil && f.Log != nil {
				f.Log.Warn("prefetch failed; the segment will be fetched when asked for", "file", name, "err", err)
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	return nil
}

// dropOlder removes spooled segments that sort before name: recovery has
// moved past them (or switched timeline) and will not ask again.
func dropOlder(spool, name string) {
	ents, _ := os.ReadDir(spool)
	for _, e := range ents {
		if pg.KindOf(e.Name()) == pg.KindSegment && e.Name()[8:] <= name[8:] {
			os.Remove(filepath.Join(spool, e.Name()))
		}
	}
}
