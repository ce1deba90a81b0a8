package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

// fileStore is a bare file store, without the wrappers Open adds.
func fileStore(t *testing.T) storage.Store {
	t.Helper()
	fs, err := storage.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// flaky is a test double for the wrappers: each call of op fails with err
// until fails calls have been made, then is served by a file store; the
// rule counts the calls.
func flaky(t *testing.T, op storagetest.Op, fails int, err error) (storage.Store, *storagetest.Rule) {
	r := &storagetest.Rule{Op: op, Times: fails, Err: err}
	return storagetest.Wrap(fileStore(t), r), r
}

var errFlaky = errors.New("connection reset by peer")

func TestRetrySucceedsWithinBudget(t *testing.T) {
	puts := &storagetest.Rule{Op: storagetest.Put, Times: 3, Err: errFlaky}
	gets := &storagetest.Rule{Op: storagetest.Get, Times: 3, Err: errFlaky}
	s := storage.WithRetry(storagetest.Wrap(fileStore(t), puts, gets), 10*time.Second, 8)
	if err := s.Put(context.Background(), "k", []byte("v"), storage.PutOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if n := puts.Calls(); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	if b := storage.ReadAll(t, s, "k"); b != "v" {
		t.Fatalf("get after retries: %q", b)
	}
}

func TestRetryGivesUp(t *testing.T) {
	// By attempts.
	f, calls := flaky(t, storagetest.Put, 100, errFlaky)
	err := storage.WithRetry(f, time.Minute, 3).Put(context.Background(), "k", []byte("v"), storage.PutOptions{})
	if !errors.Is(err, errFlaky) || !storage.IsTransient(err) || calls.Calls() != 3 ||
		!strings.Contains(err.Error(), "giving up after 3 attempts in") {
		t.Fatalf("after %d attempts: %v", calls.Calls(), err)
	}

	// By budget: no attempt starts after it.
	f, calls = flaky(t, storagetest.Put, 1000, errFlaky)
	start := time.Now()
	err = storage.WithRetry(f, 700*time.Millisecond, 1000).Put(context.Background(), "k", []byte("v"), storage.PutOptions{})
	if elapsed := time.Since(start); elapsed > 700*time.Millisecond {
		t.Errorf("retried for %v, budget 700ms", elapsed)
	}
	if !errors.Is(err, errFlaky) || calls.Calls() < 3 || !strings.Contains(err.Error(), "giving up after") {
		t.Fatalf("after %d attempts: %v", calls.Calls(), err)
	}
	t.Logf("message: %v", err)
}

func TestRetryStopsOnFinalErrors(t *testing.T) {
	for _, final := range []error{
		fmt.Errorf("get x: %w", storage.ErrNotFound),
		fmt.Errorf("put x: %w", storage.ErrExists),
		storage.Permanent(nil, "bucket gone"),
		context.Canceled,
	} {
		f, calls := flaky(t, storagetest.Get, 5, final)
		_, err := storage.WithRetry(f, time.Minute, 8).Get(context.Background(), "k")
		if err != final || calls.Calls() != 1 {
			t.Errorf("%v: %d attempts, returned %v; want 1 attempt and the error unchanged", final, calls.Calls(), err)
		}
	}
}

func TestRetryStopsWhenCallerCancels(t *testing.T) {
	f, _ := flaky(t, storagetest.Put, 1000, errFlaky)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := storage.WithRetry(f, time.Minute, 1000).Put(ctx, "k", nil, storage.PutOptions{})
	if time.Since(start) > 2*time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}

func TestTimeoutAbortsHangingCalls(t *testing.T) {
	// A store that never answers until its context ends.
	hanging := storagetest.Wrap(nil, &storagetest.Rule{Hang: true})
	s := storage.WithTimeout(hanging, 100*time.Millisecond)
	start := time.Now()
	err := s.Put(context.Background(), "k", nil, storage.PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !storage.IsTransient(err) || time.Since(start) > 2*time.Second ||
		!strings.Contains(err.Error(), "no answer within 100ms") {
		t.Fatalf("put on a hanging store: %v after %v", err, time.Since(start))
	}

	// The deadline also bounds reading a body that stops flowing: Get
	// returns at once, with a body that never yields data.
	fs := fileStore(t)
	if err := fs.Put(context.Background(), "k", []byte("hello"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	s = storage.WithTimeout(storagetest.Wrap(fs, &storagetest.Rule{Op: storagetest.Get, Body: storagetest.Stalled}), 100*time.Millisecond)
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
	s = storage.WithRetry(storage.WithTimeout(hanging, 50*time.Millisecond), 500*time.Millisecond, 100)
	start = time.Now()
	err = s.Put(context.Background(), "k", nil, storage.PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "giving up after") ||
		time.Since(start) > 2*time.Second {
		t.Fatalf("retried hanging put: %v after %v", err, time.Since(start))
	}
}

// A body read completely before the deadline is unaffected by it, and
// closing it releases the timer.
func TestTimeoutGetBody(t *testing.T) {
	s := storage.WithTimeout(fileStore(t), time.Second)
	if err := s.Put(context.Background(), "k", []byte("hello"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := storage.ReadAll(t, s, "k"); got != "hello" {
		t.Fatalf("got %q", got)
	}
}
