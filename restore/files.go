package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/internal/storage"
)

// Files that make a directory restorable; written last, from the manifest.
const (
	backupLabel   = "backup_label"
	tablespaceMap = "tablespace_map"
	autoConf      = "postgresql.auto.conf"
)

// layout writes a backup into a data directory and remembers what it
// created, so that a failure can remove it again.
type layout struct {
	pgdata string
	m      *catalog.Manifest
	spaces []tablespace // each with its location's descriptor, once run opened it
	log    *slog.Logger
	dataFD int // the data directory's descriptor, once run opened it
	// roots are the directories we write into (the data directory and each
	// tablespace location) and whether we created them.
	roots []root
	flush *flusher     // of the roots' file systems
	done  atomic.Int64 // decoded bytes of the objects written so far
	// Per file of the manifest: parts not yet written by a verified object.
	pending []atomic.Int32
}

type root struct {
	dir     string
	created bool
}

func (l *layout) run(ctx context.Context, st storage.Store, dec *codec.Decoder, o Options, res *Result) error {
	if err := l.prepareRoot(l.pgdata, o.DeleteExisting); err != nil {
		return err
	}
	for _, sp := range l.spaces {
		if err := l.prepareRoot(sp.location, false); err != nil {
			return err
		}
	}
	if err := l.openRoots(); err != nil {
		return err
	}
	defer l.closeRoots()
	for _, sp := range l.spaces {
		if err := l.symlinkEntry(sp.location, sp.link); err != nil {
			return fmt.Errorf("tablespace %d: %w", sp.oid, err)
		}
	}
	dirs := make([]string, len(l.roots))
	for i, r := range l.roots {
		dirs[i] = r.dir
	}
	fl, err := openFlusher(dirs) // before the first file is written
	if err != nil {
		return err
	}
	defer fl.close()
	l.flush = fl
	if err := l.createEntries(); err != nil {
		return err
	}
	start := time.Now()
	if o.Progress != nil {
		var total int64
		for _, ob := range l.m.Objects {
			total += ob.Size
		}
		stop := progress.Every(l.done.Load, total, o.Progress)
		defer stop()
	}
	stopFlushing := fl.background()
	err = l.download(ctx, st, dec, o.Jobs)
	stopFlushing()
	if err != nil {
		return err
	}
	l.log.Info("objects downloaded", "objects", len(l.m.Objects), "took", time.Since(start).Round(time.Millisecond))
	n, size, err := l.verify(ctx, o.Jobs)
	if err != nil {
		return err
	}
	res.Files, res.Bytes = n, size
	if err := l.finishModes(); err != nil {
		return err
	}
	return l.writeRecoveryFiles(res.Settings)
}

// prepareRoot creates dir (0700), or empties it when it exists.
func (l *layout) prepareRoot(dir string, emptyIt bool) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		top := topMissing(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		l.roots = append(l.roots, root{dir: top, created: true})
		return os.Chmod(dir, 0o700)
	}
	l.roots = append(l.roots, root{dir: dir})
	if emptyIt {
		l.log.Warn("removing the existing contents, as asked", "dir", dir)
		if err := removeContents(dir); err != nil {
			return fmt.Errorf("emptying %s: %w", dir, err)
		}
	}
	return os.Chmod(dir, 0o700) // PostgreSQL refuses a group- or world-writable data directory
}

// openRoots opens the data directory and each tablespace location, which
// every entry is then opened from (beneath.go).
func (l *layout) openRoots() error {
	l.dataFD = -1
	for i := range l.spaces {
		l.spaces[i].fd = -1
	}
	open := func(dir string) (int, error) {
		return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	var err error
	if l.dataFD, err = open(l.pgdata); err != nil {
		return &os.PathError{Op: "open", Path: l.pgdata, Err: err}
	}
	for i, sp := range l.spaces {
		if l.spaces[i].fd, err = open(sp.location); err != nil {
			return &os.PathError{Op: "open", Path: sp.location, Err: err}
		}
	}
	return nil
}

func (l *layout) closeRoots() {
	closeFD := func(fd int) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	closeFD(l.dataFD)
	for _, sp := range l.spaces {
		closeFD(sp.fd)
	}
}

// undo removes everything written: directories we created go entirely, the
// ones that existed (empty, or emptied) are emptied again.
func (l *layout) undo() {
	for i := len(l.roots) - 1; i >= 0; i-- {
		r := l.roots[i]
		var err error
		if r.created {
			err = os.RemoveAll(r.dir)
		} else {
			err = removeContents(r.dir)
		}
		if err != nil {
			l.log.Warn("could not remove what the failed restore wrote", "dir", r.dir, "err", err)
		}
	}
}

func removeContents(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

func (l *layout) path(rel string) string { return filepath.Join(l.pgdata, filepath.FromSlash(rel)) }

// heldBack are written only once every file is verified: with them the
// directory looks restorable.
func heldBack(p string) bool { return p == backupLabel || p == tablespaceMap }

// createEntries makes every directory and every file at its final size
// (empty files included), so download workers only write into them.
func (l *layout) createEntries() error {
	for _, f := range l.m.Files {
		switch f.Type {
		case catalog.TypeDir:
			if err := l.mkdirEntry(f.Path); err != nil {
				return err
			}
		case catalog.TypeFile:
			if heldBack(f.Path) {
				continue
			}
			fh, err := l.createFile(f.Path)
			if err != nil {
				return err
			}
			err = allocate(fh, f.Size)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
	// Restored servers need an empty pg_wal with archive_status.
	return l.mkdirEntry("pg_wal/archive_status")
}

// createFile creates the new file rel (0600), and the directories above it
// that the manifest does not list.
func (l *layout) createFile(rel string) (*os.File, error) {
	const flags = os.O_CREATE | os.O_EXCL | os.O_WRONLY
	fh, err := l.openEntry(rel, flags, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err := l.mkdirEntry(path.Dir(rel)); err != nil {
			return nil, err
		}
		fh, err = l.openEntry(rel, flags, 0o600)
	}
	return fh, err
}

// finishModes gives files and directories their modes and modification
// times, through descriptors opened without following links. Modes keep
// the permission bits only: never set-user-ID or set-group-ID (the
// manifest check refuses them; this is the second lock).
func (l *layout) finishModes() error {
	// Directories last and deepest first, so a read-only one cannot block the rest.
	var dirs []catalog.BackupFile
	for _, f := range l.m.Files {
		switch f.Type {
		case catalog.TypeFile:
			if heldBack(f.Path) {
				continue
			}
			if err := l.setMode(f.Path, 0, os.FileMode(f.Mode&0o777), f.MTime); err != nil {
				return err
			}
		case catalog.TypeDir:
			dirs = append(dirs, f)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path > dirs[j].Path })
	for _, d := range dirs {
		if err := l.setMode(d.Path, unix.O_DIRECTORY, os.FileMode(d.Mode&0o777)|0o700, time.Time{}); err != nil {
			return err
		}
	}
	// A tablespace's location is PostgreSQL's alone, as CREATE TABLESPACE
	// leaves it. (The mode the manifest records is its link's, always 0777.)
	for _, sp := range l.spaces {
		if err := unix.Fchmod(sp.fd, 0o700); err != nil {
			return &os.PathError{Op: "chmod", Path: sp.location, Err: err}
		}
	}
	return nil
}

// setMode gives the entry rel its mode and, unless mtime is zero, its
// modification time.
func (l *layout) setMode(rel string, flags int, mode os.FileMode, mtime time.Time) error {
	f, err := l.openEntry(rel, os.O_RDONLY|flags, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if mtime.IsZero() {
		return nil
	}
	return futimens(f, mtime)
}

// allocate gives a new file its size with its blocks reserved (fallocate)
// where the filesystem can: ext4 then allocates each file's extents once,
// not page by page as the writes arrive (restoring pgbench -s 100: system
// time 1.25 to 1.0 s), and a disk too small fails here, before any
// download. Elsewhere the file is only extended (sparse).
func allocate(fh *os.File, size int64) error {
	if size > 0 {
		err := unix.Fallocate(int(fh.Fd()), 0, 0, size)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("reserving %d bytes for %s: %w", size, fh.Name(), err)
		}
	}
	return fh.Truncate(size)
}
