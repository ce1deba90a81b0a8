package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/walship/walship/internal/fsync"
)

// tmpPrefix names in-flight uploads; List skips them and keys may not use it.
const tmpPrefix = ".walship-tmp-"

// fileStore keeps each object as a file under root, for tests, laptops and
// mounted volumes. Durability comes from fsync of the file and of every
// directory whose entries changed.
type fileStore struct {
	root string
}

func newFileStore(root string) (*fileStore, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("file repository %q is not an absolute path: %s", root, acceptedForms)
	}
	return &fileStore{root: filepath.Clean(root)}, nil
}

func (f *fileStore) String() string { return "file://" + f.root }

// path maps a key to its file, refusing keys that would leave the root.
func (f *fileStore) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if strings.HasPrefix(key[strings.LastIndex(key, "/")+1:], tmpPrefix) {
		return "", permanent(nil, "invalid storage key %q: names starting with %s are reserved", key, tmpPrefix)
	}
	return filepath.Join(f.root, filepath.FromSlash(key)), nil
}

func (f *fileStore) Put(ctx context.Context, key string, body []byte, opts PutOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := f.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := f.ensureDir(dir); err != nil {
		return err
	}
	// Write beside the final name so the rename/link stays on one filesystem
	// and readers never see a partial object.
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return f.ioErr("put", p, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a successful rename
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return f.ioErr("put", p, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return f.ioErr("put (fsync)", p, err)
	}
	if err := tmp.Close(); err != nil {
		return f.ioErr("put", p, err)
	}
	if opts.IfNotExists {
		// link(2) fails with EEXIST if the name is taken: an atomic
		// create-if-absent that still publishes a complete file.
		if err := os.Link(tmpName, p); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("put %s: %w", p, ErrExists)
			}
			return f.ioErr("put", p, err)
		}
	} else if err := os.Rename(tmpName, p); err != nil {
		if errors.Is(err, fs.ErrExist) { // rename onto a non-empty directory
			err = syscall.EISDIR
		}
		return f.ioErr("put", p, err)
	}
	// The new directory entry is durable only once the directory is synced.
	if err := fsync.Dir(dir); err != nil {
		return f.ioErr("put", p, err)
	}
	return nil
}

// ensureDir creates dir (0700: WAL holds the database's data) and fsyncs
// each directory that gained an entry, so the object's path survives a crash.
func (f *fileStore) ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	// Find the highest missing ancestor before creating, to know what to sync.
	top := dir
	for {
		parent := filepath.Dir(top)
		if _, err := os.Stat(parent); err == nil || parent == top {
			break
		}
		top = parent
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f.ioErr("create directory", dir, err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := fsync.Dir(filepath.Dir(d)); err != nil {
			return f.ioErr("create directory", dir, err)
		}
		if d == top {
			return nil
		}
	}
}

func (f *fileStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, f.mapErr("get", p, err)
	}
	if st, err := fh.Stat(); err != nil || st.IsDir() {
		fh.Close()
		return nil, fmt.Errorf("get %s: %w", p, ErrNotFound)
	}
	return fh, nil
}

func (f *fileStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	p, err := f.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return ObjectInfo{}, f.mapErr("stat", p, err)
	}
	if st.IsDir() {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// mapErr turns "no such file" (also "a parent is a file", ENOTDIR) into
// ErrNotFound; for reads only, a write must never claim that.
func (f *fileStore) mapErr(op, p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s %s: %w", op, p, ErrNotFound)
	}
	return f.ioErr(op, p, err)
}

// ioErr makes permission and read-only errors permanent: a retry cannot fix
// them, a person can. Anything else (ENOSPC, EIO) stays transient.
func (f *fileStore) ioErr(op, p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		return permanentSetting(err, nil, RepositoryURL, "cannot %s in repository %s: fix the directory's permissions or the %s", op, f, RepositoryURL)
	case errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR):
		// S3 allows keys "a" and "a/b" together, a filesystem cannot.
		return permanent(err, "cannot %s %s: an object and a directory of objects would share one name", op, p)
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

// List walks only the directory the prefix names fully ("wal/00000001" walks
// wal/) and filters by key prefix, since a prefix need not end at a "/".
func (f *fileStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	start := f.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(f.root, filepath.FromSlash(prefix[:i]))
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll // nothing stored there yet
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(f.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Descend only where keys can still match the prefix.
			if p != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tmpPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while we walked
			}
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, f.ioErr("list", prefix, err)
	}
	// WalkDir's per-directory order differs from key order ("a/b" vs "a-c").
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (f *fileStore) ListDir(ctx context.Context, dir string) ([]ObjectInfo, []string, error) {
	if err := checkDir(dir); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	p := filepath.Join(f.root, filepath.FromSlash(dir))
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil // nothing stored there yet
	}
	if err != nil {
		return nil, nil, f.ioErr("list", p, err)
	}
	var objs []ObjectInfo
	var subdirs []string
	for _, e := range entries {
		switch {
		case e.IsDir():
			subdirs = append(subdirs, dir+e.Name()+"/")
		case e.Type().IsRegular() && !strings.HasPrefix(e.Name(), tmpPrefix):
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while we listed
			}
			if err != nil {
				return nil, nil, f.ioErr("list", p, err)
			}
			objs = append(objs, ObjectInfo{Key: dir + e.Name(), Size: info.Size(), ModTime: info.ModTime()})
		}
	}
	// ReadDir sorts by name, which is key order for the objects; a folder
	// sorts as its key prefix, "a/" after "a-b/".
	slices.Sort(subdirs)
	return objs, subdirs, nil
}

func (f *fileStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f.ioErr("delete", p, err)
	}
	return nil
}

func (f *fileStore) DeleteMany(ctx context.Context, keys []string) error {
	if len(keys) > MaxDeleteBatch {
		return permanent(nil, "%d keys in one batch delete, the most is %d", len(keys), MaxDeleteBatch)
	}
	for _, k := range keys {
		if err := f.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
