// Package storage is walship's object-store abstraction: one small interface,
// a backend per URL scheme (file://, s3://), and wrappers (timeout, retry) that
// add behaviour around any backend instead of inside each one.
package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/walship/walship/internal/fault"
)

// Sentinel errors every backend maps its own errors to, so callers can decide
// without knowing which backend they talk to.
var (
	// ErrNotFound: the object does not exist. Never returned for a transient
	// failure. A fault.ErrNotFound.
	ErrNotFound = fault.Sentinel(fault.ErrNotFound, "object not found")
	// ErrExists: a Put with IfNotExists found an object already under that
	// key. A fault.ErrConflict.
	ErrExists = fault.Sentinel(fault.ErrConflict, "object already exists")
	// ErrPermanent marks errors a retry cannot fix (bad credentials, missing bucket,
	// access denied). Wrapped with a message that says what to do.
	ErrPermanent = errors.New("permanent storage error")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// PutOptions adjusts one Put.
type PutOptions struct {
	// IfNotExists makes the write fail with ErrExists when the key is taken,
	// atomically where the backend can (O_EXCL / link on files, If-None-Match on S3).
	IfNotExists bool
}

// Store is an object store rooted at one repository location. Keys are
// slash-separated paths relative to that root ("wal/0000000100000000/...").
//
// Put returns only once the object is durable and the backend confirmed its
// content (fsync+rename on files; a server-verified checksum on S3).
type Store interface {
	Put(ctx context.Context, key string, body []byte, opts PutOptions) error
	// Get opens an object for reading. The caller must Close the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// ListDir returns the objects directly under dir (a prefix ending in
	// "/", or "" for the top), and the sub-folders under it (each ending
	// in "/"), sorted by key: one level, however many objects lie deeper.
	ListDir(ctx context.Context, dir string) (objs []ObjectInfo, subdirs []string, err error)
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// DeleteMany removes up to MaxDeleteBatch objects, in one request where
	// the store allows it; missing objects are not an error.
	DeleteMany(ctx context.Context, keys []string) error
	// String names the location for messages (never includes credentials).
	String() string
}

// MaxDeleteBatch is the most keys one DeleteMany takes: S3's limit for
// one DeleteObjects request.
const MaxDeleteBatch = 1000

// DeleteAll removes keys, MaxDeleteBatch at a time, batch after batch in
// the order given: deleting a backup's or a year's WAL objects one request
// each would take hours on a large repository.
func DeleteAll(ctx context.Context, st Store, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), MaxDeleteBatch)
		if err := st.DeleteMany(ctx, keys[:n]); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// Location names where a store's objects live, for keying local state
// (journals, caches) to one repository: its URL, and for S3 the endpoint
// too, since the same bucket name on two endpoints is two repositories.
func Location(st Store) string {
	if l, ok := st.(interface{ Location() string }); ok {
		return l.Location()
	}
	return st.String()
}
