// Package spool is wal-fetch's prefetch spool: segments downloaded ahead of
// recovery into pg_wal/walship/prefetch, so that answering restore_command
// is a rename on the same filesystem.
//
// It imports only the standard library's basics on purpose: walship's fast
// path (internal/fastpath) answers from the spool while the program is still
// starting, before the store and codec packages initialise.
package spool

import (
	"context"
	"os"
	"syscall"
	"time"
)

// Spool is the directory of a spool.
type Spool string

// For returns the spool that serves restore destination dest: beside it in
// pg_wal, so taking a file is a rename.
func For(dest string) Spool {
	return Spool(Dir(dest) + "/walship/prefetch")
}

// Path is where the spooled copy of name (or a marker file) lives.
func (s Spool) Path(name string) string { return string(s) + "/" + name }

// Take moves the spooled copy of segment name to dest and reports whether
// there was one. It first records name as the newest segment recovery asked
// for (the prefetcher follows it). Files spooled before the machine last
// restarted are discarded instead: they were written without fsync and may
// be torn. When a live prefetcher is downloading name right now, Take waits
// for that download rather than let the caller start a second one.
func (s Spool) Take(ctx context.Context, name, dest string) bool {
	if !IsSegment(name) {
		return false
	}
	s.MarkLast(name)
	if !s.SameBoot() {
		s.Clear()
		return false
	}
	marker := s.Inflight(name)
	for {
		if os.Rename(s.Path(name), dest) == nil {
			return true
		}
		if _, err := os.Stat(marker); err != nil || !s.PrefetcherAlive() {
			return false
		}
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}

// Inflight is the marker file that exists while name is being downloaded.
func (s Spool) Inflight(name string) string { return s.Path(".inflight-" + name) }

// MarkLast records the newest segment PostgreSQL asked for.
func (s Spool) MarkLast(name string) {
	if os.MkdirAll(string(s), 0o700) != nil {
		return
	}
	tmp := s.Path(".last.tmp")
	if os.WriteFile(tmp, []byte(name), 0o600) == nil {
		os.Rename(tmp, s.Path(".last"))
	}
}

// LastRequested is the segment MarkLast recorded, or fallback.
func (s Spool) LastRequested(fallback string) string {
	b, err := os.ReadFile(s.Path(".last"))
	if err != nil || !IsSegment(string(b)) {
		return fallback
	}
	return string(b)
}

// DropOlder removes spooled segments that sort before name: recovery has
// moved past them (or switched timeline) and will not ask again. name itself
// stays: a caller may be about to take it.
func (s Spool) DropOlder(name string) {
	ents, _ := os.ReadDir(string(s))
	for _, e := range ents {
		if IsSegment(e.Name()) && e.Name()[8:] < name[8:] {
			os.Remove(s.Path(e.Name()))
		}
	}
}

// Lock makes the caller the spool's only prefetcher, without waiting. The
// lock is an flock: it dies with the process, so a killed prefetcher never
// blocks the next one.
func (s Spool) Lock() (unlock func(), ok bool) {
	f, err := os.OpenFile(s.Path(".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// PrefetcherAlive reports whether a prefetcher holds the spool's lock. No
// lock file means no prefetcher ever ran there.
func (s Spool) PrefetcherAlive() bool {
	f, err := os.Open(s.Path(".lock"))
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

// SameBoot reports whether the spool was filled since the machine last
// started (an empty spool counts as current).
func (s Spool) SameBoot() bool {
	b, err := os.ReadFile(s.Path(".boot"))
	if os.IsNotExist(err) {
		ents, _ := os.ReadDir(string(s))
		for _, e := range ents {
			if e.Name() != ".last" && e.Name() != ".lock" {
				return false
			}
		}
		return true
	}
	return err == nil && string(b) == bootID()
}

// MarkBoot records that the spool is being filled during this boot.
func (s Spool) MarkBoot() { os.WriteFile(s.Path(".boot"), []byte(bootID()), 0o600) }

// Clear removes every spooled segment and marker except the lock and the
// last request.
func (s Spool) Clear() {
	ents, _ := os.ReadDir(string(s))
	for _, e := range ents {
		if e.Name() != ".lock" && e.Name() != ".last" {
			os.Remove(s.Path(e.Name()))
		}
	}
}

// IsSegment reports whether name is a WAL segment's file name: 24
// upper-case hexadecimal digits (internal/pg's KindSegment, without
// importing it).
func IsSegment(name string) bool {
	if len(name) != 24 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// Dir and Base are path/filepath's Dir and Base for the plain paths
// PostgreSQL passes (see the package comment for why not path/filepath).
func Dir(path string) string {
	switch i := lastSlash(path); {
	case i > 0:
		return path[:i]
	case i == 0:
		return "/"
	}
	return "."
}

// Base: see Dir.
func Base(path string) string { return path[lastSlash(path)+1:] }

func lastSlash(path string) int {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return i
		}
	}
	return -1
}
