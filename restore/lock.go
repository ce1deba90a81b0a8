package restore

import (
	"os"
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
