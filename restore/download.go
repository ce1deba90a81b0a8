package restore

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage"
)

// download fetches and decodes every object, jobs at a time, writing each
// object's parts into their files at their offsets. A worker holds only
// the decoder's buffers, never a whole object.
func (l *layout) download(ctx context.Context, st storage.Store, dec *codec.Decoder, jobs int) error {
	parts := make([][]target, len(l.m.Objects))
	l.pending = make([]atomic.Int32, len(l.m.Files))
	for i, f := range l.m.Files {
		if f.Type != catalog.TypeFile || heldBack(f.Path) {
			continue
		}
		var off int64
		for _, p := range f.Parts {
			parts[p.Object] = append(parts[p.Object], target{file: i, part: p, fileOff: off})
			off += p.Length
			l.pending[i].Add(1)
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
			return l.fetchObject(gctx, st, dec, n, parts[n])
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Cancelled between objects, no worker failed, yet some never ran.
	return ctx.Err()
}

// fetchObject downloads object n into its files. storage.Load retries a
// download that broke off midway: the next attempt rewrites the same bytes
// at the same offsets, which is harmless.
func (l *layout) fetchObject(ctx context.Context, st storage.Store, dec *codec.Decoder, n int, parts []target) error {
	obj := l.m.Objects[n]
	err := storage.Load(ctx, st, obj.Key, func(r io.Reader) error {
		return l.writeObject(dec, obj, parts, r)
	}, storage.OnRetry(func(attempt int, err error) {
		l.log.Warn("download interrupted, retrying", "object", obj.Key, "attempt", attempt, "err", err)
	}))
	switch {
	case err == nil:
		l.done.Add(obj.Size)
		l.flush.wrote(obj.Size)
		return l.verifyCompleted(parts)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("object %s of backup %s is missing from %s: the backup cannot be restored; choose another one (walship backup list)", obj.Key, l.m.ID, st)
	case errors.Is(err, codec.ErrCorrupt):
		return fmt.Errorf("object %s of backup %s in %s is damaged: %w. The backup cannot be restored; choose another one (walship backup list)", obj.Key, l.m.ID, st, err)
	}
	return fmt.Errorf("object %s of backup %s: %w", obj.Key, l.m.ID, err)
}

// writeObject decodes one download of obj from r into its parts.
func (l *layout) writeObject(dec *codec.Decoder, obj catalog.BackupObject, parts []target, r io.Reader) error {
	w := &partWriter{l: l, parts: parts}
	h, err := dec.WithMaxSize(obj.Size).Decode(r, codec.Destination(w), obj.Key)
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
	// Only now, with the object verified whole: a damaged object is
	// reported as such, not as the first file it garbled.
	return w.mismatch
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
// It checksums each part as it writes it, against the file's checksum for
// a file of one part and the part's own otherwise (see catalog.Part).
type partWriter struct {
	l     *layout
	parts []target // by offset
	pos   int64    // offset in the object of the next byte
	next  int      // first part not yet completely written
	open  *os.File
	which int // file index of open
	dirty dirtyRange
	sum   hash.Hash // of the part being written
	// mismatch is the first part whose bytes differ from the manifest.
	mismatch error
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
		if w.pos == t.part.Offset {
			w.sum = codec.NewChecksum()
		}
		n := min(int64(len(p)), end-w.pos)
		f, err := w.file(t.file)
		if err != nil {
			return 0, err
		}
		off := t.fileOff + w.pos - t.part.Offset
		if _, err := f.WriteAt(p[:n], off); err != nil {
			return 0, err
		}
		w.sum.Write(p[:n])
		w.dirty.add(f, off, n)
		p, w.pos = p[n:], w.pos+n
		if w.pos == end {
			w.checkPart(t)
			w.next++
		}
	}
	w.pos += int64(len(p))
	return total, nil
}

// partChecksum is what a part of f must hash to: the file's checksum when
// the part is the whole file, else the part's own ("" in manifests written
// before parts had checksums).
func partChecksum(f catalog.BackupFile, p catalog.Part) string {
	if len(f.Parts) == 1 && p.Length == f.Size {
		return f.Checksum
	}
	return p.Checksum
}

// checkPart compares the part just written with the manifest, when the
// manifest has a checksum for it.
func (w *partWriter) checkPart(t target) {
	f := w.l.m.Files[t.file]
	want := partChecksum(f, t.part)
	if want == "" {
		return // an older manifest: verifyCompleted reads the file back
	}
	got := codec.ChecksumOf(w.sum)
	if got != want && w.mismatch == nil {
		what := f.Path
		if len(f.Parts) > 1 {
			what = fmt.Sprintf("%s (bytes %d to %d)", f.Path, t.fileOff, t.fileOff+t.part.Length)
		}
		w.mismatch = fmt.Errorf("%s does not match the manifest of backup %s after restoring it: %d bytes with checksum %s, the manifest says %s",
			what, w.l.m.ID, t.part.Length, got, want)
	}
}

func (w *partWriter) file(i int) (*os.File, error) {
	if w.open != nil && w.which == i {
		return w.open, nil
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	f, err := w.l.openEntry(w.l.m.Files[i].Path, os.O_WRONLY, 0)
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
	w.dirty.flush(w.open)
	err := w.open.Close()
	w.open = nil
	return err
}

// verifyCompleted finishes the check of each file whose last part the
// verified object just wrote. partWriter checked the parts as it wrote
// them; a file it could not check that way (a split file of an older
// manifest) is read back now, while other workers still download, hot in
// the page cache.
func (l *layout) verifyCompleted(parts []target) error {
	for _, t := range parts {
		if l.pending[t.file].Add(-1) != 0 {
			continue
		}
		if f := l.m.Files[t.file]; !checkedWhileWritten(f) {
			if err := l.verifyFile(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkedWhileWritten reports whether partWriter checked every byte of f
// against the manifest as it wrote it.
func checkedWhileWritten(f catalog.BackupFile) bool {
	var n int64
	for _, p := range f.Parts {
		if partChecksum(f, p) == "" {
			return false
		}
		n += p.Length
	}
	return len(f.Parts) > 0 && n == f.Size
}

// verify checks the restored files that have no parts, and so were not
// checked during the download (empty files; backup_label and
// tablespace_map, against the manifest's copy), and counts every file.
func (l *layout) verify(ctx context.Context, jobs int) (files int, size int64, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, f := range l.m.Files {
		if f.Type != catalog.TypeFile {
			continue
		}
		files++
		size += f.Size
		if len(f.Parts) > 0 && !heldBack(f.Path) {
			continue // verifyCompleted checked it
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return l.verifyFile(f) })
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	// Cancelled between files: some were never checked.
	return files, size, ctx.Err()
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
		fh, err := l.openEntry(f.Path, os.O_RDONLY, 0)
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
