package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/walship/walship/internal/fault"
)

// ReadError is a failure of the body of an object Load opened (a dropped
// connection, a timeout while streaming), as opposed to a failure of what
// the caller does with the bytes: the only failure of Load's fn that a new
// attempt may cure. Load's readers return it; fn passes it on, wrapped as it
// likes (codec.SourceError, say), for Load to recognise.
type ReadError struct {
	Key string
	Err error
}

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// LoadOption adjusts one Load.
type LoadOption func(*loadConfig)

type loadConfig struct {
	onRetry func(attempt int, err error)
}

// OnRetry has Load call f before each new attempt, with the number of the
// attempt that failed and its error: for a warning in the caller's log.
func OnRetry(f func(attempt int, err error)) LoadOption {
	return func(c *loadConfig) { c.onRetry = f }
}

// Load opens the object key and calls fn with its body. When fn fails
// because that body broke off (its error holds the *ReadError the body
// returned), Load opens the object again from its start and calls fn
// again: fn must begin its output afresh each time (a new temporary file,
// the same offsets rewritten, a buffer emptied). Objects are decoded whole,
// so there is no resuming from an offset.
//
// Attempts follow the store's retry policy (WithRetry's backoff, attempts
// and budget, counted from the first attempt; the defaults of Open when st
// has no retry wrapper). Anything else fn or opening returns ends Load at
// once: a missing object, bytes that are damaged, a destination that
// cannot be written, a done context. Opening is retried by the store's
// wrapper, not again here.
func Load(ctx context.Context, st Store, key string, fn func(io.Reader) error, opts ...LoadOption) error {
	var c loadConfig
	for _, o := range opts {
		o(&c)
	}
	isRead := func(err error) bool {
		var rerr *ReadError
		return errors.As(err, &rerr)
	}
	end, err := policyOf(st).run(ctx, isRead, c.onRetry, func() error { return loadOnce(ctx, st, key, fn) })
	switch {
	case end.cancelled != nil:
		return fmt.Errorf("reading %s from %s: %w (after %d attempt%s; last error: %v)", key, st, end.cancelled, end.attempts, plural(end.attempts), err)
	case end.gaveUp:
		return fault.Mark(fmt.Errorf("reading %s from %s was interrupted %d time%s in %v, giving up: %w",
			key, st, end.attempts, plural(end.attempts), end.elapsed.Round(time.Millisecond), err), fault.ErrTransient)
	}
	return err
}

func loadOnce(ctx context.Context, st Store, key string, fn func(io.Reader) error) error {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	return fn(&loadReader{r: rc, key: key})
}

// loadReader marks the failures of a body as ReadErrors; io.EOF stays
// itself, since readers compare it with ==.
type loadReader struct {
	r   io.Reader
	key string
}

func (l *loadReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		err = &ReadError{Key: l.key, Err: err}
	}
	return n, err
}

// policyOf finds the retry wrapper under st (through stores that Unwrap
// to the one they wrap) and returns its policy; Open's defaults without one.
func policyOf(st Store) policy {
	for st != nil {
		if r, ok := st.(*retryStore); ok {
			return r.policy
		}
		u, ok := st.(interface{ Unwrap() Store })
		if !ok {
			break
		}
		st = u.Unwrap()
	}
	return newPolicy(DefaultRetryBudget, DefaultMaxAttempts)
}
