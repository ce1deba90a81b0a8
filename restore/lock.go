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

// bootID identifies the running kernel instance; it changes at every boot.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return string(b)
}

// sameBoot reports whether the spool was filled since the machine last
// started (an empty spool counts as current).
func sameBoot(spool string) bool {
	b, err := os.ReadFile(filepath.Join(spool, ".boot"))
	if os.IsNotExist(err) {
		ents, _ := os.ReadDir(spool)
		for _, e := range ents {
			if e.Name() != ".last" && e.Name() != ".lock" {
				return false
			}
		}
		return true
	}
	return err == nil && string(b) == bootID()
}

func markBoot(spool string) {
	os.WriteFile(filepath.Join(spool, ".boot"), []byte(bootID()), 0o600)
}

// clearSpool removes every spooled segment and marker.
func clearSpool(spool string) {
	ents, _ := os.ReadDir(spool)
	for _, e := range ents {
		if e.Name() != ".lock" && e.Name() != ".last" {
			os.Remove(filepath.Join(spool, e.Name()))
		}
	}
}
