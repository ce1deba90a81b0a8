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

	"github.com/walship/walship/internal/shorthash"
	"github.com/walship/walship/internal/walshipdir"
)

// Spool is the directory of a spool.
type Spool string

// For returns the spool that serves restore destination dest from the
// repository at location (see Location): beside dest in pg_wal, so taking a
// file is a rename, and one per repository, so that segments fetched from
// one are never handed out for another.
func For(dest, location string) Spool {
	return Spool(walshipdir.Prefetch(Dir(dest), shorthash.Of(location)))
}

// Location names a repository for For: its URL and its S3 endpoint (the
// same bucket on two endpoints is two repositories).
func Location(repo, endpoint string) string { return repo + " at " + endpoint }

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

// bootIDFile changes at every boot; a variable for tests.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// bootID identifies the running kernel instance, or is "" when it cannot be
// read (no /proc): then a boot cannot be told from the next.
func bootID() string {
	b, err := os.ReadFile(bootIDFile)
	if err != nil || len(b) == 0 {
		return ""
	}
	return string(b)
}

// synced marks a spool whose files were all fsynced: it survives a restart.
const synced = "synced"

// MustSync reports whether spooled files must be fsynced: when the boot
// cannot be told, a file torn by a crash would otherwise look current.
func MustSync() bool { return bootID() == "" }

// SameBoot reports whether the spool was filled since the machine last
// started, or with every file synced (an empty spool counts as current).
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
	if err != nil {
		return false
	}
	id := bootID()
	return string(b) == synced || (id != "" && string(b) == id)
}

// MarkBoot records that the spool is being filled during this boot, or with
// synced files when the boot cannot be told (see MustSync).
func (s Spool) MarkBoot() {
	mark := bootID()
	if mark == "" {
		mark = synced
	}
	os.WriteFile(s.Path(".boot"), []byte(mark), 0o600)
}

// Claim records the repository instance (its identifier) the prefetcher
// fills the spool from, and clears what another one left. Called by the
// prefetcher, after MarkBoot.
func (s Spool) Claim(repositoryID string) {
	if b, err := os.ReadFile(s.Path(".repository")); err == nil && string(b) != repositoryID {
		s.Clear()
		s.MarkBoot()
	}
	os.WriteFile(s.Path(".repository"), []byte(repositoryID), 0o600)
}

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
