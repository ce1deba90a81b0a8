package restore

import (
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every entry of the backup is opened from the descriptor of its root (the
// data directory, or the location of its tablespace) without following any
// symbolic link, on the way or at the end. A link someone plants in the
// data directory while restore runs cannot redirect a write, a chmod or a
// read outside it. The tablespace links restore itself makes in pg_tblspc
// are not followed either: a path under pg_tblspc/<oid>/ is opened from the
// tablespace's location.

// noOpenat2 is set once the kernel said it has no openat2 (before Linux
// 5.6); restore then walks each path one directory at a time.
var noOpenat2 atomic.Bool

// errLinkInTheWay is what a symbolic link where restore writes becomes.
var errLinkInTheWay = errors.New("a symbolic link is in the way, and restore follows none but the tablespace links it makes itself")

// openBeneath opens name (slash-separated, relative) from the directory
// dirfd, following no symbolic link and never leaving dirfd.
func openBeneath(dirfd int, name string, flags int, perm uint32) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		if flags&unix.O_CREAT != 0 {
			how.Mode = uint64(perm)
		}
		fd, err := retryInterrupted(func() (int, error) { return unix.Openat2(dirfd, name, &how) })
		if !errors.Is(err, unix.ENOSYS) {
			return fd, linkError(err)
		}
		noOpenat2.Store(true)
	}
	dir, base := path.Split(name)
	parent, err := walkDirs(dirfd, dir, false)
	if err != nil {
		return -1, err
	}
	if parent != dirfd {
		defer unix.Close(parent)
	}
	if base == ".." {
		return -1, unix.EINVAL
	}
	fd, err := retryInterrupted(func() (int, error) { return unix.Openat(parent, base, flags, perm) })
	return fd, linkError(err)
}

// walkDirs opens the directories of rel one after the other from dirfd,
// each without following a link (O_NOFOLLOW), and with create makes the
// missing ones (mode 0700). It returns the last one's descriptor, or dirfd
// itself when rel names no directory.
func walkDirs(dirfd int, rel string, create bool) (int, error) {
	fd := dirfd
	closeIt := func() {
		if fd != dirfd {
			unix.Close(fd)
		}
	}
	for _, name := range strings.Split(rel, "/") {
		switch name {
		case "", ".":
			continue
		case "..":
			closeIt()
			return -1, unix.EINVAL
		}
		if create {
			if err := unix.Mkdirat(fd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				closeIt()
				return -1, err
			}
		}
		next, err := retryInterrupted(func() (int, error) {
			return unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		if errors.Is(err, unix.ENOTDIR) && isLink(fd, name) {
			err = errLinkInTheWay // O_DIRECTORY|O_NOFOLLOW on a link says ENOTDIR
		}
		closeIt()
		if err != nil {
			return -1, linkError(err)
		}
		fd = next
	}
	return fd, nil
}

func isLink(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

func linkError(err error) error {
	if errors.Is(err, unix.ELOOP) {
		return errLinkInTheWay
	}
	return err
}

// retryInterrupted retries a call a signal interrupted, or that openat2
// asks to retry (EAGAIN: a rename elsewhere raced its resolution).
func retryInterrupted(f func() (int, error)) (int, error) {
	for tries := 1; ; tries++ {
		fd, err := f()
		if !errors.Is(err, unix.EINTR) && (!errors.Is(err, unix.EAGAIN) || tries == 10) {
			return fd, err
		}
	}
}

// rootOf is the descriptor an entry of the manifest is opened from, and
// its path from there: the tablespace's location for a path under
// pg_tblspc/<oid>/ of a tablespace being restored, the data directory
// otherwise.
func (l *layout) rootOf(rel string) (int, string) {
	if oid, rest, ok := inTablespace(rel); ok {
		for _, sp := range l.spaces {
			if sp.oid == oid {
				return sp.fd, rest
			}
		}
	}
	return l.dataFD, rel
}

// openEntry opens the manifest's path rel (see rootOf).
func (l *layout) openEntry(rel string, flags int, perm uint32) (*os.File, error) {
	dirfd, name := l.rootOf(rel)
	fd, err := openBeneath(dirfd, name, flags, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: l.path(rel), Err: err}
	}
	return os.NewFile(uintptr(fd), l.path(rel)), nil
}

// mkdirEntry makes the directory rel and the missing ones above it.
func (l *layout) mkdirEntry(rel string) error {
	dirfd, name := l.rootOf(rel)
	fd, err := walkDirs(dirfd, name, true)
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: l.path(rel), Err: err}
	}
	if fd != dirfd {
		unix.Close(fd)
	}
	return nil
}

// symlinkEntry makes rel (in the data directory) a link to target.
func (l *layout) symlinkEntry(target, rel string) error {
	dir, base := path.Split(rel)
	fd, err := walkDirs(l.dataFD, dir, true)
	if err == nil {
		err = unix.Symlinkat(target, fd, base)
		if fd != l.dataFD {
			unix.Close(fd)
		}
	}
	if err != nil {
		return &os.PathError{Op: "symlink", Path: l.path(rel), Err: err}
	}
	return nil
}

// writeEntry creates or replaces the file rel with data.
func (l *layout) writeEntry(rel string, data []byte) error {
	f, err := l.openEntry(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readEntry reads the file rel.
func (l *layout) readEntry(rel string) ([]byte, error) {
	f, err := l.openEntry(rel, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// futimens sets the access and modification times of an open file to t:
// utimensat(2) with no path, as glibc's futimens does (x/sys has no call
// for it, and its Futimes goes through /proc).
func futimens(f *os.File, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if errno != 0 {
		return &os.PathError{Op: "futimens", Path: f.Name(), Err: errno}
	}
	return nil
}
