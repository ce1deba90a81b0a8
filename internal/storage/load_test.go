package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

// loadFixture stores an encoded object of 256 KiB of incompressible bytes
// under "obj" in a file store, and returns the store and the original bytes.
func loadFixture(t *testing.T) (storage.Store, []byte) {
	t.Helper()
	data := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{}).Read(data)
	var obj bytes.Buffer
	h := codec.Header{Name: "obj", Size: int64(len(data)), Checksum: codec.Checksum(data)}
	if err := (&codec.Encoder{}).Encode(&obj, h, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fs := fileStore(t)
	if err := fs.Put(context.Background(), "obj", obj.Bytes(), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return fs, data
}

// decodeInto is a Load callback as the callers write it: the destination
// starts afresh on every call, and the decoder tells reader from data.
func decodeInto(dst *bytes.Buffer, calls *int) func(io.Reader) error {
	return func(r io.Reader) error {
		*calls++
		dst.Reset()
		_, err := (&codec.Decoder{}).Decode(r, dst, "obj")
		return err
	}
}

func TestLoadResumesTornReads(t *testing.T) {
	fs, data := loadFixture(t)
	cut := &storagetest.Rule{Op: storagetest.Get, Times: 2, Body: storagetest.Cut(1000, nil)}
	st := storage.WithRetry(storagetest.Wrap(fs, cut), 10*time.Second, 8)
	var got bytes.Buffer
	var calls, warned int
	err := storage.Load(context.Background(), st, "obj", decodeInto(&got, &calls),
		storage.OnRetry(func(int, error) { warned++ }))
	if err != nil || calls != 3 || cut.Calls() != 3 || warned != 2 || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("%v after %d calls of fn, %d gets, %d warnings; want success after 3", err, calls, cut.Calls(), warned)
	}
}

func TestLoadGivesUpWithinBudget(t *testing.T) {
	fs, _ := loadFixture(t)
	// By attempts.
	cut := &storagetest.Rule{Op: storagetest.Get, Body: storagetest.Cut(1000, errors.New("connection reset by peer"))}
	st := storage.WithRetry(storagetest.Wrap(fs, cut), time.Minute, 3)
	var got bytes.Buffer
	var calls int
	err := storage.Load(context.Background(), st, "obj", decodeInto(&got, &calls))
	var src *codec.SourceError
	if err == nil || calls != 3 || !errors.As(err, &src) || !strings.Contains(err.Error(), "interrupted 3 times") ||
		!strings.Contains(err.Error(), "giving up") || !strings.Contains(err.Error(), "connection reset by peer") {
		t.Fatalf("%v after %d calls; want to give up after 3", err, calls)
	}
	t.Logf("message: %v", err)

	// By budget: no attempt starts after it; the store wrapper under the
	// faults sets it.
	st = storagetest.Wrap(storage.WithRetry(fs, 500*time.Millisecond, 1000), cut)
	calls = 0
	start := time.Now()
	err = storage.Load(context.Background(), st, "obj", decodeInto(&got, &calls))
	if elapsed := time.Since(start); elapsed > time.Second || calls < 2 || err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("%v after %d calls in %v; budget 500ms", err, calls, elapsed)
	}
}

func TestLoadDoesNotRetryWhatCannotHeal(t *testing.T) {
	fs, _ := loadFixture(t)
	var got bytes.Buffer
	for name, c := range map[string]struct {
		rule  *storagetest.Rule
		fn    func(calls *int) func(io.Reader) error
		check func(error) bool
	}{
		"corrupt object": {
			rule:  &storagetest.Rule{Op: storagetest.Get, Body: storagetest.Flip(5000)},
			fn:    func(calls *int) func(io.Reader) error { return decodeInto(&got, calls) },
			check: func(err error) bool { return errors.Is(err, codec.ErrCorrupt) },
		},
		"not found": {
			rule:  &storagetest.Rule{Op: storagetest.Get, Err: storage.ErrNotFound},
			fn:    func(calls *int) func(io.Reader) error { return decodeInto(&got, calls) },
			check: func(err error) bool { return errors.Is(err, storage.ErrNotFound) },
		},
		"destination fails": {
			rule: &storagetest.Rule{Op: storagetest.Get},
			fn: func(calls *int) func(io.Reader) error {
				return func(r io.Reader) error {
					*calls++
					_, err := (&codec.Decoder{}).Decode(r, failingWriter{}, "obj")
					return err
				}
			},
			// The decoder reports it in words, not wrapped.
			check: func(err error) bool { return err != nil && strings.Contains(err.Error(), errDiskFull.Error()) },
		},
	} {
		st := storage.WithRetry(storagetest.Wrap(fs, c.rule), time.Minute, 8)
		calls := 0
		err := storage.Load(context.Background(), st, "obj", c.fn(&calls))
		if !c.check(err) || c.rule.Calls() != 1 || calls > 1 {
			t.Errorf("%s: %v after %d gets, %d calls of fn; want it at once", name, err, c.rule.Calls(), calls)
		}
	}
}

var errDiskFull = errors.New("no space left on device")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestLoadStopsWhenCallerCancels(t *testing.T) {
	fs, _ := loadFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	// The first read breaks off, and the caller gives up meanwhile.
	cut := &storagetest.Rule{Op: storagetest.Get, Body: storagetest.Cut(1000, nil)}
	st := storage.WithRetry(storagetest.Wrap(fs, cut), time.Minute, 1000)
	var got bytes.Buffer
	calls := 0
	fn := decodeInto(&got, &calls)
	start := time.Now()
	err := storage.Load(ctx, st, "obj", func(r io.Reader) error {
		cancel()
		return fn(r)
	})
	if !errors.Is(err, context.Canceled) || calls != 1 || time.Since(start) > time.Second {
		t.Fatalf("%v after %d calls in %v; want to stop at once", err, calls, time.Since(start))
	}
}
