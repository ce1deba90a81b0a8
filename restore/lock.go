package restore

import (
	"os"
	"path/filepath"
	"syscall"
)

// tryLock takes an exclusive, non-blocking flock on path. The lock dies with
// the process, so a killed prefetcher never blocks the next one.
func tryLock(path string) (unlock func(), ok bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// prefetcherAlive reports whether a prefetcher holds the spool's lock. No
// lock file means no prefetcher ever ran there.
func prefetcherAlive(spool string) bool {
	f, err := os.Open(filepath.Join(spool, ".lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
