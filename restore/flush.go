package restore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// flushEvery is how many restored bytes may wait in the disk's volatile
// write cache before the restore flushes it. sync_file_range (writeback.go)
// gets the data to the disk as it arrives, but a disk with a write cache
// keeps it there until flushed, and one flush at the end waited for the
// whole restore: 0.4 to 0.7 s of a 3.4 s restore of 1.5 GB, both cores
// idle in blkdev_issue_flush. Flushing every 64 MiB overlaps that wait with
// the download (the end's flush then takes 0.05 s); flushing after every
// object measured the same.
const flushEvery = 64 << 20

// flusher makes the file systems a restore writes to durable (syncfs(2)):
// in the background while the download goes on, and once more at the end.
// It opens each root before the first write and flushes through those
// descriptors only: syncfs reports the write-back errors of the file system
// that happened since its descriptor was opened, so none is missed, and an
// error a background flush saw is kept and reported by the final one.
type flusher struct {
	roots   []*os.File
	written atomic.Int64 // bytes written since a flush was last asked for
	kick    chan struct{}

	mu  sync.Mutex
	err error // the first failed flush
}

// syncFilesystem is a variable for the tests.
var syncFilesystem = func(f *os.File) error { return unix.Syncfs(int(f.Fd())) }

func openFlusher(dirs []string) (*flusher, error) {
	fl := &flusher{kick: make(chan struct{}, 1)}
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			fl.close()
			return nil, err
		}
		fl.roots = append(fl.roots, f)
	}
	return fl, nil
}

// background flushes each time wrote has counted flushEvery more bytes,
// until the returned stop is called (which waits for a flush under way).
func (fl *flusher) background() (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-quit:
				return
			case <-fl.kick:
				_ = fl.sync() // kept in fl.err for the final sync
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}

// wrote counts n bytes written to the restore's files.
func (fl *flusher) wrote(n int64) {
	if fl.written.Add(n) < flushEvery {
		return
	}
	fl.written.Store(0)
	select {
	case fl.kick <- struct{}{}:
	default: // a flush is already due
	}
}

// sync flushes every root's file system. It returns the first error any
// flush of this flusher met, so a failure in the background is not lost.
func (fl *flusher) sync() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for _, f := range fl.roots {
		if fl.err != nil {
			break
		}
		if err := syncFilesystem(f); err != nil {
			fl.err = fmt.Errorf("flushing %s to disk: %w", f.Name(), err)
		}
	}
	return fl.err
}

func (fl *flusher) close() error {
	var errs []error
	for _, f := range fl.roots {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
