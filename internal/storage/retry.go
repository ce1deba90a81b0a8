package storage

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/walship/walship/internal/fault"
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
	return &retryStore{inner: s, policy: newPolicy(budget, maxAttempts)}
}

type retryStore struct {
	inner  Store
	policy policy
}

func (r *retryStore) String() string   { return r.inner.String() }
func (r *retryStore) Location() string { return Location(r.inner) }

// do runs fn until it succeeds, fails for good, or the bounds are reached.
// Giving up wraps the last error, so errors.Is still sees its cause, and is
// a fault.ErrTransient.
func (r *retryStore) do(ctx context.Context, op, key string, fn func(context.Context) error) error {
	end, err := r.policy.run(ctx, IsTransient, nil, func() error { return fn(ctx) })
	switch {
	case end.cancelled != nil:
		return fmt.Errorf("%s %s on %s: %w (after %d attempts; last error: %v)", op, key, r.inner, end.cancelled, end.attempts, err)
	case end.gaveUp:
		return fault.Mark(fmt.Errorf("%s %s on %s: giving up after %d attempt%s in %v: %w",
			op, key, r.inner, end.attempts, plural(end.attempts), end.elapsed.Round(time.Millisecond), err), fault.ErrTransient)
	}
	return err
}

// policy is walship's one way of retrying: exponential backoff with full
// jitter, up to maxAttempts attempts, none starting after budget has
// elapsed since the first one.
type policy struct {
	budget      time.Duration
	maxAttempts int
}

func newPolicy(budget time.Duration, maxAttempts int) policy {
	return policy{budget: budget, maxAttempts: max(maxAttempts, 1)}
}

// retryEnd says how a run that did not end with its last error ended.
type retryEnd struct {
	attempts  int
	elapsed   time.Duration
	cancelled error // the caller's context ended (its error)
	gaveUp    bool  // the bounds were reached
}

// run calls fn until it succeeds, fails with an error retryable refuses,
// the caller's context ends or the bounds are reached, calling onRetry
// (when set) before each new attempt. It returns fn's last error, and how
// the loop ended for the caller to word its message.
func (p policy) run(ctx context.Context, retryable func(error) bool, onRetry func(attempt int, err error), fn func() error) (retryEnd, error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := fn()
		end := retryEnd{attempts: attempt}
		if err == nil || !retryable(err) {
			return end, err
		}
		if ctx.Err() != nil {
			end.cancelled = ctx.Err()
			return end, err
		}
		delay := backoff(attempt)
		if end.elapsed = time.Since(start); attempt >= p.maxAttempts || end.elapsed+delay > p.budget {
			end.gaveUp = true
			return end, err
		}
		if onRetry != nil {
			onRetry(attempt, err)
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			end.cancelled = ctx.Err()
			return end, err
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
