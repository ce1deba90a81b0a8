package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flakyStore is a test double for the wrappers: each call fails with err
// until fails calls have been made, then is served by a file store.
type flakyStore struct {
	Store
	fails int32
	err   error
	calls atomic.Int32
}

func (f *flakyStore) attempt() error {
	if f.calls.Add(1) <= f.fails {
		return f.err
	}
	return nil
}

func (f *flakyStore) Put(ctx context.Context, key string, body []byte, opts PutOptions) error {
	if err := f.attempt(); err != nil {
		return err
	}
	return f.Store.Put(ctx, key, body, opts)
}

func (f *flakyStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.attempt(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, key)
}

func newFlaky(t *testing.T, fails int32, err error) *flakyStore {
	fs, _ := newFileStore(t.TempDir())
	return &flakyStore{Store: fs, fails: fails, err: err}
}

var errFlaky = errors.New("connection reset by peer")

func TestRetrySucceedsWithinBudget(t *testing.T) {
	f := newFlaky(t, 3, errFlaky)
	s := WithRetry(f, 10*time.Second, 8)
	if err := s.Put(context.Background(), "k", []byte("v"), PutOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	f.calls.Store(0)
	if b := readAll(t, s, "k"); b != "v" {
		t.Fatalf("get after retries: %q", b)
	}
}

func TestRetryGivesUp(t *testing.T) {
	// By attempts.
	f := newFlaky(t, 100, errFlaky)
	err := WithRetry(f, time.Minute, 3).Put(context.Background(), "k", []byte("v"), PutOptions{})
	if !errors.Is(err, errFlaky) || !IsTransient(err) || f.calls.Load() != 3 ||
		!strings.Contains(err.Error(), "giving up after 3 attempts in") {
		t.Fatalf("after %d attempts: %v", f.calls.Load(), err)
	}

	// By budget: no attempt starts after it.
	f = newFlaky(t, 1000, errFlaky)
	start := time.Now()
	err = WithRetry(f, 700*time.Millisecond, 1000).Put(context.Background(), "k", []byte("v"), PutOptions{})
	if elapsed := time.Since(start); elapsed > 700*time.Millisecond {
		t.Errorf("retried for %v, budget 700ms", elapsed)
	}
	if !errors.Is(err, errFlaky) || f.calls.Load() < 3 || !strings.Contains(err.Error(), "giving up after") {
		t.Fatalf("after %d attempts: %v", f.calls.Load(), err)
	}
	t.Logf("message: %v", err)
}

func TestRetryStopsOnFinalErrors(t *testing.T) {
	for _, final := range []error{
		fmt.Errorf("get x: %w", ErrNotFound),
		fmt.Errorf("put x: %w", ErrExists),
		permanent(nil, "bucket gone"),
		context.Canceled,
	} {
		f := newFlaky(t, 5, final)
		_, err := WithRetry(f, time.Minute, 8).Get(context.Background(), "k")
		if err != final || f.calls.Load() != 1 {
			t.Errorf("%v: %d attempts, returned %v; want 1 attempt and the error unchanged", final, f.calls.Load(), err)
		}
	}
}

func TestRetryStopsWhenCallerCancels(t *testing.T) {
	f := newFlaky(t, 1000, errFlaky)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := WithRetry(f, time.Minute, 1000).Put(ctx, "k", nil, PutOptions{})
	if time.Since(start) > 2*time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}

// hangingStore never answers until its context ends; Get returns a body
// that never yields data.
type hangingStore struct {
	Store
	openGet bool // Get returns at once, with a body that hangs
}

func (h *hangingStore) Put(ctx context.Context, key string, body []byte, opts PutOptions) error {
	<-ctx.Done()
	return ctx.Err()
}

func (h *hangingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if h.openGet {
		pr, _ := io.Pipe()
		return pr, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestTimeoutAbortsHangingCalls(t *testing.T) {
	s := WithTimeout(&hangingStore{}, 100*time.Millisecond)
	start := time.Now()
	err := s.Put(context.Background(), "k", nil, PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !IsTransient(err) || time.Since(start) > 2*time.Second ||
		!strings.Contains(err.Error(), "no answer within 100ms") {
		t.Fatalf("put on a hanging store: %v after %v", err, time.Since(start))
	}

	// The deadline also bounds reading a body that stops flowing.
	s = WithTimeout(&hangingStore{openGet: true}, 100*time.Millisecond)
	rc, err := s.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("read of a hanging body: %v after %v", err, time.Since(start))
	}

	// retry(timeout(...)): each attempt times out, then the budget ends it.
	s = WithRetry(WithTimeout(&hangingStore{}, 50*time.Millisecond), 500*time.Millisecond, 100)
	start = time.Now()
	err = s.Put(context.Background(), "k", nil, PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "giving up after") ||
		time.Since(start) > 2*time.Second {
		t.Fatalf("retried hanging put: %v after %v", err, time.Since(start))
	}
}

// A body read completely before the deadline is unaffected by it, and
// closing it releases the timer.
func TestTimeoutGetBody(t *testing.T) {
	fs, _ := newFileStore(t.TempDir())
	s := WithTimeout(fs, time.Second)
	if err := s.Put(context.Background(), "k", []byte("hello"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "k"); got != "hello" {
		t.Fatalf("got %q", got)
	}
}
