package storage

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Backoff bounds: full jitter, each delay uniform in [0, min(cap, base*2^n)).
const (
	retryBase = 100 * time.Millisecond
	retryCap  = 5 * time.Second
)

// WithRetry retries transient errors (see IsTransient) of every call to s
// with exponential backoff and full jitter, up to maxAttempts attempts and
// no attempt starting after budget has elapsed since the first one. It stops
// at once when ctx is done. For Get only opening is retried: errors while
// streaming the body reach the caller, who knows how much it consumed.
func WithRetry(s Store, budget time.Duration, maxAttempts int) Store {
	if maxAttempts < 1 {
		maxAttempts = 1
	}
	return &retryStore{inner: s, budget: budget, maxAttempts: maxAttempts}
}

type retryStore struct {
	inner       Store
	budget      time.Duration
	maxAttempts int
}

func (r *retryStore) String() string   { return r.inner.String() }
func (r *retryStore) Location() string { return Location(r.inner) }

// do runs fn until it succeeds, fails for good, or the bounds are reached.
// Giving up wraps the last error, so errors.Is still sees its cause.
func (r *retryStore) do(ctx context.Context, op, key string, fn func(context.Context) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !IsTransient(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s on %s: %w (after %d attempts; last error: %v)", op, key, r.inner, ctx.Err(), attempt, err)
		}
		delay := backoff(attempt)
		if attempt >= r.maxAttempts || time.Since(start)+delay > r.budget {
			return fmt.Errorf("%s %s on %s: giving up after %d attempt%s in %v: %w",
				op, key, r.inner, attempt, plural(attempt), time.Since(start).Round(time.Millisecond), err)
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s %s on %s: %w (after %d attempts; last error: %v)", op, key, r.inner, ctx.Err(), attempt, err)
		case <-timer.C:
		}
	}
}

// backoff is the delay after the given (1-based) failed attempt.
func backoff(attempt int) time.Duration {
	limit := retryCap
	if attempt < 16 { // 100ms<<15 is far past the cap; avoid overflow beyond
		limit = min(retryCap, retryBase<<(attempt-1))
	}
	return rand.N(limit)
}

func (r *retryStore) Put(ctx context.Context, key string, body []byte, opts PutOptions) error {
	return r.do(ctx, "put", key, func(ctx context.Context) error {
		return r.inner.Put(ctx, key, body, opts)
	})
}

func (r *retryStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get", key, func(ctx context.Context) error {
		var err error
		rc, err = r.inner.Get(ctx, key)
		return err
	})
	return rc, err
}

func (r *retryStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var info ObjectInfo
	err := r.do(ctx, "stat", key, func(ctx context.Context) error {
		var err error
		info, err = r.inner.Stat(ctx, key)
		return err
	})
	return info, err
}

func (r *retryStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var infos []ObjectInfo
	err := r.do(ctx, "list", prefix, func(ctx context.Context) error {
		var err error
		infos, err = r.inner.List(ctx, prefix)
		return err
	})
	return infos, err
}

func (r *retryStore) ListDir(ctx context.Context, dir string) (objs []ObjectInfo, subdirs []string, err error) {
	err = r.do(ctx, "list", dir, func(ctx context.Context) error {
		var err error
		objs, subdirs, err = r.inner.ListDir(ctx, dir)
		return err
	})
	return objs, subdirs, err
}

func (r *retryStore) Delete(ctx context.Context, key string) error {
	return r.do(ctx, "delete", key, func(ctx context.Context) error {
		return r.inner.Delete(ctx, key)
	})
}

func (r *retryStore) DeleteMany(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	// Deleting again what is gone already is harmless: retry the batch.
	return r.do(ctx, "delete", keys[0], func(ctx context.Context) error {
		return r.inner.DeleteMany(ctx, keys)
	})
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
