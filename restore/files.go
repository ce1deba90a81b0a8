package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
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
	spaces []tablespace
	log    *slog.Logger
	// roots are the directories we write into (the data directory and each
	// tablespace location) and whether we created them.
	roots []root
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
		if err := os.MkdirAll(filepath.Dir(l.path(sp.link)), 0o700); err != nil {
			return err
		}
		if err := os.Symlink(sp.location, l.path(sp.link)); err != nil {
			return fmt.Errorf("tablespace %d: %w", sp.oid, err)
		}
	}
	if err := l.createEntries(); err != nil {
		return err
	}
	start := time.Now()
	if err := l.download(ctx, st, dec, o.Jobs, o.Budget); err != nil {
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
	res.Settings = append([][2]string{{"restore_command", o.RestoreCommand}}, o.Target.Settings()...)
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
		l.log.Warn("removing the existing contents (--delete-existing)", "dir", dir)
		if err := removeContents(dir); err != nil {
			return fmt.Errorf("emptying %s: %w", dir, err)
		}
	}
	return os.Chmod(dir, 0o700) // PostgreSQL refuses a group- or world-writable data directory
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
			if err := os.MkdirAll(l.path(f.Path), 0o700); err != nil {
				return err
			}
		case catalog.TypeFile:
			if heldBack(f.Path) {
				continue
			}
			p := l.path(f.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			fh, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			err = fh.Truncate(f.Size)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
	// Restored servers need an empty pg_wal with archive_status.
	return os.MkdirAll(l.path("pg_wal/archive_status"), 0o700)
}

// download fetches and decodes every object, jobs at a time, writing each
// object's parts into their files at their offsets. A worker holds only
// the decoder's buffers, never a whole object.
func (l *layout) download(ctx context.Context, st storage.Store, dec *codec.Decoder, jobs int, budget time.Duration) error {
	parts := make([][]target, len(l.m.Objects))
	for i, f := range l.m.Files {
		if f.Type != catalog.TypeFile || heldBack(f.Path) {
			continue
		}
		var off int64
		for _, p := range f.Parts {
			parts[p.Object] = append(parts[p.Object], target{file: i, part: p, fileOff: off})
			off += p.Length
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for n := range l.m.Objects {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			sort.Slice(parts[n], func(i, j int) bool { return parts[n][i].part.Offset < parts[n][j].part.Offset })
			return l.fetchObject(gctx, st, dec, n, parts[n], budget)
		})
	}
	return g.Wait()
}

// fetchObject downloads object n into its files, retrying a download that
// broke off midway (rewriting the same bytes is harmless) within budget.
func (l *layout) fetchObject(ctx context.Context, st storage.Store, dec *codec.Decoder, n int, parts []target, budget time.Duration) error {
	obj := l.m.Objects[n]
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := l.fetchOnce(ctx, st, dec, obj, parts)
		var midStream *codec.SourceError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("object %s of backup %s is missing from %s: the backup cannot be restored; choose another one (walship backup list)", obj.Key, l.m.ID, st)
		case errors.Is(err, codec.ErrCorrupt):
			return fmt.Errorf("object %s of backup %s in %s is damaged: %w. The backup cannot be restored; choose another one (walship backup list)", obj.Key, l.m.ID, st, err)
		case !errors.As(err, &midStream):
			return fmt.Errorf("object %s of backup %s: %w", obj.Key, l.m.ID, err)
		}
		if time.Since(start) > budget {
			return fmt.Errorf("downloading object %s of backup %s from %s was interrupted %d times over %s, giving up: %w",
				obj.Key, l.m.ID, st, attempt, time.Since(start).Round(time.Second), err)
		}
		l.log.Warn("download interrupted, retrying", "object", obj.Key, "attempt", attempt, "err", err)
		sleep := time.Duration(rand.Int64N(int64(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)) + 1))
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *layout) fetchOnce(ctx context.Context, st storage.Store, dec *codec.Decoder, obj catalog.BackupObject, parts []target) error {
	rc, err := st.Get(ctx, obj.Key)
	if err != nil {
		return err
	}
	defer rc.Close()
	w := &partWriter{l: l, parts: parts}
	h, err := dec.Decode(rc, w, obj.Key)
	if cerr := w.close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The decoder checked the bytes against the object's own header; the
	// manifest must agree with that header too.
	if h.Size != obj.Size || (obj.Checksum != "" && h.Checksum != obj.Checksum) {
		return fmt.Errorf("%w: object holds %d bytes with checksum %s, the manifest says %d bytes with %s",
			codec.ErrCorrupt, h.Size, h.Checksum, obj.Size, obj.Checksum)
	}
	return nil
}

// target is where one part of an object goes.
type target struct {
	file    int // index in the manifest's files
	part    catalog.Part
	fileOff int64 // where the part starts in its file
}

// partWriter receives an object's decoded bytes in order and writes each
// run that belongs to a file at its place, keeping one file open at a time.
// Bytes of no part (files that vanished during the backup) are dropped.
type partWriter struct {
	l     *layout
	parts []target // by offset
	pos   int64    // offset in the object of the next byte
	next  int      // first part not yet completely written
	open  *os.File
	which int // file index of open
}

func (w *partWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 && w.next < len(w.parts) {
		t := w.parts[w.next]
		end := t.part.Offset + t.part.Length
		if w.pos < t.part.Offset { // a gap: skip to the part
			skip := min(int64(len(p)), t.part.Offset-w.pos)
			p, w.pos = p[skip:], w.pos+skip
			continue
		}
		n := min(int64(len(p)), end-w.pos)
		f, err := w.file(t.file)
		if err != nil {
			return 0, err
		}
		if _, err := f.WriteAt(p[:n], t.fileOff+w.pos-t.part.Offset); err != nil {
			return 0, err
		}
		p, w.pos = p[n:], w.pos+n
		if w.pos == end {
			w.next++
		}
	}
	w.pos += int64(len(p))
	return total, nil
}

func (w *partWriter) file(i int) (*os.File, error) {
	if w.open != nil && w.which == i {
		return w.open, nil
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(w.l.path(w.l.m.Files[i].Path), os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	w.open, w.which = f, i
	return f, nil
}

func (w *partWriter) close() error {
	if w.open == nil {
		return nil
	}
	err := w.open.Close()
	w.open = nil
	return err
}

// verify reads every restored file back and compares its size and checksum
// with the manifest. A file spans objects that different workers wrote in
// any order, so it is checked whole, once all are written (from the page
// cache, usually); this also catches a bad write to the local disk.
func (l *layout) verify(ctx context.Context, jobs int) (files int, size int64, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, f := range l.m.Files {
		if f.Type != catalog.TypeFile {
			continue
		}
		files++
		size += f.Size
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return l.verifyFile(f) })
	}
	return files, size, g.Wait()
}

func (l *layout) verifyFile(f catalog.BackupFile) error {
	var got string
	var n int64
	switch f.Path {
	case backupLabel, tablespaceMap:
		// Written from the manifest's copy; it must match the stored file.
		s := l.m.BackupLabel
		if f.Path == tablespaceMap {
			s = l.m.TablespaceMap
		}
		got, n = codec.Checksum([]byte(s)), int64(len(s))
	default:
		fh, err := os.Open(l.path(f.Path))
		if err != nil {
			return err
		}
		defer fh.Close()
		h := codec.NewChecksum()
		if n, err = io.Copy(h, fh); err != nil {
			return fmt.Errorf("reading back %s: %w", f.Path, err)
		}
		got = codec.ChecksumOf(h)
	}
	if n != f.Size || got != f.Checksum {
		return fmt.Errorf("%s does not match the manifest of backup %s after restoring it: %d bytes with checksum %s, the manifest says %d bytes with %s",
			f.Path, l.m.ID, n, got, f.Size, f.Checksum)
	}
	return nil
}

// finishModes gives files and directories their modes and modification times.
func (l *layout) finishModes() error {
	// Directories last and deepest first, so a read-only one cannot block the rest.
	var dirs []catalog.BackupFile
	for _, f := range l.m.Files {
		switch f.Type {
		case catalog.TypeFile:
			if heldBack(f.Path) {
				continue
			}
			p := l.path(f.Path)
			if err := os.Chmod(p, os.FileMode(f.Mode&0o7777)); err != nil {
				return err
			}
			if err := os.Chtimes(p, f.MTime, f.MTime); err != nil {
				return err
			}
		case catalog.TypeDir:
			dirs = append(dirs, f)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path > dirs[j].Path })
	for _, d := range dirs {
		if err := os.Chmod(l.path(d.Path), os.FileMode(d.Mode&0o7777)|0o700); err != nil {
			return err
		}
	}
	for _, sp := range l.spaces {
		if err := os.Chmod(sp.location, os.FileMode(sp.mode&0o7777)|0o700); err != nil {
			return err
		}
	}
	return nil
}

// writeRecoveryFiles writes the recovery settings, tablespace_map and
// backup_label, flushes the file systems, and then recovery.signal: a
// directory holding recovery.signal was restored completely.
func (l *layout) writeRecoveryFiles(settings [][2]string) error {
	if err := l.writeAutoConf(settings); err != nil {
		return err
	}
	if l.m.TablespaceMap != "" {
		if err := os.WriteFile(l.path(tablespaceMap), []byte(l.tablespaceMap()), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(l.path(backupLabel), []byte(l.m.BackupLabel), 0o600); err != nil {
		return err
	}
	for _, r := range l.roots { // each root is on the file system it holds
		if err := syncFS(r.dir); err != nil {
			return fmt.Errorf("flushing %s to disk: %w", r.dir, err)
		}
	}
	if err := os.WriteFile(l.path("recovery.signal"), nil, 0o600); err != nil {
		return err
	}
	return syncFS(l.pgdata)
}

// tablespaceMap is the backup's tablespace_map with each location replaced
// by where the tablespace was restored: PostgreSQL recreates the links in
// pg_tblspc from this file when it starts.
func (l *layout) tablespaceMap() string {
	var b strings.Builder
	for _, sp := range l.spaces {
		// pg_backup_stop's escaping: a backslash before \n, \r and \.
		loc := strings.NewReplacer("\\", "\\\\", "\n", "\\\n", "\r", "\\\r").Replace(sp.location)
		fmt.Fprintf(&b, "%d %s\n", sp.oid, loc)
	}
	return b.String()
}

// recoveryKeys are settings a previous restore of the source server may
// have left in postgresql.auto.conf; two recovery targets would stop the
// server from starting, so they are replaced.
func recoveryKey(key string) bool {
	return key == "restore_command" || strings.HasPrefix(key, "recovery_target")
}

// writeAutoConf rewrites postgresql.auto.conf: the backup's settings without
// old recovery settings, then ours.
func (l *layout) writeAutoConf(settings [][2]string) error {
	p := l.path(autoConf)
	old, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(old), "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		if recoveryKey(strings.TrimSpace(key)) {
			continue
		}
		b.WriteString(line)
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "# walship restore of backup %s at %s\n", l.m.ID, time.Now().UTC().Format(time.RFC3339))
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s[0], ConfQuote(s[1]))
	}
	return os.WriteFile(p, []byte(b.String()), 0o600)
}

// ConfQuote quotes a value for postgresql.conf.
func ConfQuote(s string) string {
	return "'" + strings.NewReplacer("\\", "\\\\", "'", "''").Replace(s) + "'"
}

// RestoreCommand builds restore_command: exe wal-fetch %f %p, then args,
// each quoted for sh (PostgreSQL runs it with sh -c) and with % doubled
// (PostgreSQL replaces %f, %p and %% in it).
func RestoreCommand(exe string, args ...string) string {
	words := []string{shellQuote(exe), "wal-fetch", "%f", "%p"}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

func shellQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// syncFS flushes the file system holding dir (syncfs(2)): one call instead
// of an fsync per restored file.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
