package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// WithTimeout bounds every call to s by d. For Get the deadline also covers
// reading the body, so a store that stops sending cannot hang the caller.
func WithTimeout(s Store, d time.Duration) Store {
	return &timeoutStore{inner: s, d: d}
}

type timeoutStore struct {
	inner Store
	d     time.Duration
}

func (t *timeoutStore) String() string   { return t.inner.String() }
func (t *timeoutStore) Location() string { return Location(t.inner) }

// explain names the timeout when it, and not the caller, ended the call.
func (t *timeoutStore) explain(parent, ctx context.Context, op, key string, err error) error {
	if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s %s on %s: no answer within %v: %w", op, key, t.inner, t.d, err)
	}
	return err
}

func (t *timeoutStore) Put(parent context.Context, key string, body []byte, opts PutOptions) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.explain(parent, ctx, "put", key, t.inner.Put(ctx, key, body, opts))
}

func (t *timeoutStore) Stat(parent context.Context, key string) (ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	info, err := t.inner.Stat(ctx, key)
	return info, t.explain(parent, ctx, "stat", key, err)
}

func (t *timeoutStore) List(parent context.Context, prefix string) ([]ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	infos, err := t.inner.List(ctx, prefix)
	return infos, t.explain(parent, ctx, "list", prefix, err)
}

func (t *timeoutStore) ListDir(parent context.Context, dir string) ([]ObjectInfo, []string, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	objs, subdirs, err := t.inner.ListDir(ctx, dir)
	return objs, subdirs, t.explain(parent, ctx, "list", dir, err)
}

func (t *timeoutStore) Delete(parent context.Context, key string) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.explain(parent, ctx, "delete", key, t.inner.Delete(ctx, key))
}

func (t *timeoutStore) DeleteMany(parent context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.explain(parent, ctx, "delete", keys[0], t.inner.DeleteMany(ctx, keys))
}

// Get keeps the context alive until the body is closed. When the deadline
// passes first, the body is closed underneath the reader, which unblocks a
// Read stuck on a silent network peer (or any backend that honours Close).
func (t *timeoutStore) Get(parent context.Context, key string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	rc, err := t.inner.Get(ctx, key)
	if err != nil {
		err = t.explain(parent, ctx, "get", key, err)
		cancel()
		return nil, err
	}
	b := &deadlineBody{rc: rc, ctx: ctx, cancel: cancel, what: fmt.Sprintf("reading %s from %s", key, t.inner)}
	b.stop = context.AfterFunc(ctx, func() { b.closeBody() })
	return b, nil
}

type deadlineBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
	stop   func() bool
	what   string

	once     sync.Once
	closeErr error
}

func (b *deadlineBody) closeBody() error {
	b.once.Do(func() { b.closeErr = b.rc.Close() })
	return b.closeErr
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		// A read failed because the deadline closed the body: say so.
		if cerr := b.ctx.Err(); cerr != nil {
			return n, fmt.Errorf("%s: %w", b.what, cerr)
		}
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	b.stop()
	err := b.closeBody()
	b.cancel()
	return err
}
