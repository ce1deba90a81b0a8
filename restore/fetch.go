// Package restore takes data out of the repository: WAL fetch for
// restore_command with a prefetch spool (this file), and base backups laid
// down for point-in-time recovery with their recovery targets (restore.go).
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/spool"
	"github.com/walship/walship/internal/storage"
)

// ErrNotInArchive: the repository really does not hold the file. Only this
// may be reported to PostgreSQL as "not found" (exit 1): anything else would
// make it end recovery early, at the wrong point. A fault.ErrNotFound.
var ErrNotInArchive = fault.Sentinel(fault.ErrNotFound, "not in the archive")

// ErrNoRepository: the location holds no repository (no identity record):
// a volume not mounted, a wrong prefix or endpoint, a bucket that vanished.
// A missing file there proves nothing, so it must not be ErrNotInArchive.
// A fault.ErrRepositoryMissing.
var ErrNoRepository = fault.Sentinel(fault.ErrRepositoryMissing, "no walship repository at this location")

// Fetcher fetches archived WAL files.
type Fetcher struct {
	Store   storage.Store
	Decoder *codec.Decoder
	Log     *slog.Logger
	// SystemID, when set, is the database system recovery expects (restore
	// writes it into restore_command): a repository of another system is
	// an error, never "not found".
	SystemID uint64
	// Identity, when set, is the repository's identity record as the
	// caller already read it: no second read to confirm the repository.
	Identity *catalog.Identity
	// Spool is where segments are prefetched for this repository
	// (spool.For); empty: no spool.
	Spool spool.Spool

	confirmed bool // the repository's identity was read and matched
}

// Fetch writes the archived file name to dest atomically, verified. It
// takes the file from the prefetch spool when it is there, or about to be.
func (f *Fetcher) Fetch(ctx context.Context, name, dest string) error {
	key, err := catalog.WALKey(name)
	if err != nil {
		return err
	}
	if f.Spool != "" && f.Spool.Take(ctx, name, dest) {
		return nil
	}
	return f.fetchObject(ctx, key, name, dest)
}

// fetchObject downloads and decodes one object; storage.Load retries a
// download that broke off midway. Anything else (a damaged object, a wrong
// key, a destination that cannot be written) will not heal and fails at once.
func (f *Fetcher) fetchObject(ctx context.Context, key, name, dest string) error {
	err := f.fetchFile(ctx, key, name, dest, false)
	var interrupted *storage.ReadError
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if err := f.confirmRepository(ctx); err != nil {
			return fmt.Errorf("%s is not in %s, and that location is not the repository recovery expects: %w", name, f.Store, err)
		}
		return fmt.Errorf("%s: %w", name, ErrNotInArchive)
	case errors.Is(err, codec.ErrCorrupt):
		return fmt.Errorf("%s in %s (%s) is damaged or was altered, and cannot be used: %w. Restore it from another copy of the repository, or choose a recovery target before it",
			name, f.Store, key, err)
	case errors.As(err, &interrupted):
		return fmt.Errorf("fetching %s: %w", name, err)
	}
	return err
}

// confirmRepository proves that the store holds a walship repository, of the
// expected system when SystemID is set, before a missing file may be reported
// as "not in the archive".
func (f *Fetcher) confirmRepository(ctx context.Context) error {
	if f.confirmed {
		return nil
	}
	var id catalog.Identity
	var err error
	if f.Identity != nil {
		id = *f.Identity
	} else {
		id, err = catalog.LoadIdentity(ctx, f.Store)
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: %s has no %s (a folder or volume not mounted, a wrong prefix or endpoint, a deleted bucket, or nothing was ever archived there)",
			ErrNoRepository, f.Store, catalog.IdentityKey)
	case err != nil:
		return err
	case f.SystemID != 0 && id.SystemID != f.SystemID:
		return fmt.Errorf("%w: it belongs to database system %d, but recovery expects system %d", catalog.ErrWrongSystem, id.SystemID, f.SystemID)
	}
	f.confirmed = true
	return nil
}

// fetchFile downloads one object into dest, fsynced only when durable,
// through storage.Load: a download that breaks off starts again with a new
// temporary file, for the foreground fetch and prefetch alike.
// restore_command's file needs no fsync: PostgreSQL makes it durable itself
// when it keeps it. Spooled files need it only when a restart cannot be told
// (spool.MustSync); otherwise the spool is discarded after one.
func (f *Fetcher) fetchFile(ctx context.Context, key, name, dest string, durable bool) error {
	dec := f.Decoder.WithMaxSize(maxWALFileSize(name))
	return storage.Load(ctx, f.Store, key, func(r io.Reader) error {
		_, err := dec.DecodeToFile(r, dest, name, durable)
		return err
	}, storage.OnRetry(func(attempt int, err error) {
		if f.Log != nil {
			f.Log.Warn("download interrupted, retrying", "file", name, "attempt", attempt, "err", err)
		}
	}))
}

// maxWALFileSize bounds what one archived file may decode to, so a crafted
// object cannot fill pg_wal: PostgreSQL's largest segment size, and 1 MiB
// for history and backup-label files (wal-push refuses larger ones).
func maxWALFileSize(name string) int64 {
	switch pg.KindOf(name) {
	case pg.KindHistory, pg.KindBackup:
		return 1 << 20
	}
	return 1 << 30
}

// Prefetch keeps the spool filled with the n segments that follow the
// newest one PostgreSQL asked for (name, then whatever later calls record),
// with up to parallel downloads running at all times: a download that ends
// starts the next one at once, so the spool refills as fast as the store and
// the CPUs allow. It drops segments recovery has passed, and returns once
// the archive has no next segment yet (or a download failed: the foreground
// fetch retries and reports it), or when recovery has not moved for a while.
// One prefetcher per spool runs at a time; another call returns at once.
func (f *Fetcher) Prefetch(ctx context.Context, name, dest string, n, parallel int) error {
	if pg.KindOf(name) != pg.KindSegment || n <= 0 || f.Spool == "" {
		return nil
	}
	sp := f.Spool
	if err := os.MkdirAll(string(sp), 0o700); err != nil {
		return err
	}
	unlock, ok := sp.Lock()
	if !ok {
		return nil
	}
	defer unlock()
	if !sp.SameBoot() {
		sp.Clear()
	}
	sp.MarkBoot()

	id := f.Identity
	if id == nil {
		loaded, err := catalog.LoadIdentity(ctx, f.Store)
		if err != nil {
			return nil // the foreground fetch reports what is wrong
		}
		id = &loaded
	}
	segSize := id.WALSegmentSize
	if !pg.ValidSegmentSize(int64(segSize)) {
		return nil // no segment size to count the next segments with
	}
	// Segments spooled from a repository since emptied or recreated at the
	// same location are not handed out.
	sp.Claim(id.ID())
	type result struct {
		name string
		err  error
	}
	done := make(chan result, max(parallel, 1))
	inflight := map[string]bool{}
	ended := false // the archive has no next segment (yet): start nothing more
	idleSince := time.Now()
	for {
		current := sp.LastRequested(name)
		sp.DropOlder(current)
		if !ended && ctx.Err() == nil {
			seg, err := pg.ParseSegmentName(current)
			if err != nil {
				return err
			}
			for range n {
				seg = seg.Next(segSize)
				next := seg.Name()
				if len(inflight) >= max(parallel, 1) {
					break
				}
				if _, err := os.Stat(sp.Path(next)); err == nil || inflight[next] {
					continue
				}
				inflight[next] = true
				os.WriteFile(sp.Inflight(next), nil, 0o600)
				go func() {
					key, _ := catalog.WALKey(next)
					done <- result{next, f.fetchFile(ctx, key, next, sp.Path(next), spool.MustSync())}
				}()
			}
		}
		if len(inflight) > 0 {
			idleSince = time.Now()
		} else if ended || ctx.Err() != nil {
			return ctx.Err()
		} else if time.Since(idleSince) > 2*time.Second {
			return nil // the spool is full and recovery has not moved
		}
		select {
		case r := <-done:
			delete(inflight, r.name)
			os.Remove(sp.Inflight(r.name))
			if r.err != nil {
				ended = true
				if !errors.Is(r.err, storage.ErrNotFound) && f.Log != nil {
					f.Log.Warn("prefetch failed; the segment will be fetched when asked for", "file", r.name, "err", r.err)
				}
			}
		case <-time.After(20 * time.Millisecond):
			// Only to notice recovery moving on (.last): a finished download
			// wakes the loop at once, and the spool holds n segments ahead.
		}
	}
}
