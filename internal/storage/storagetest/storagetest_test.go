package storagetest_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

func fileStore(t *testing.T) storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), "file://"+filepath.Join(t.TempDir(), "repo"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if err := st.Put(context.Background(), k, []byte("0123456789"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func read(st storage.Store, key string) (string, error) {
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// A rule fails the calls it matches, Times times, and counts every one.
func TestRuleErrTimesAndCounts(t *testing.T) {
	boom := errors.New("boom")
	r := &storagetest.Rule{Op: storagetest.Get, Prefix: "a/", Times: 2, Err: boom}
	st := storagetest.Wrap(fileStore(t), r)
	for i, want := range []error{boom, boom, nil} {
		if _, err := read(st, "a/1"); !errors.Is(err, want) {
			t.Fatalf("get %d: %v, want %v", i, err, want)
		}
	}
	if got, err := read(st, "b/1"); err != nil || got != "0123456789" {
		t.Fatalf("unmatched key: %q, %v", got, err)
	}
	if _, err := st.Stat(context.Background(), "a/1"); err != nil {
		t.Fatalf("unmatched operation: %v", err)
	}
	if r.Calls() != 3 || r.Count("a/1") != 3 || r.Count("b/1") != 0 {
		t.Fatalf("calls %d, keys %v", r.Calls(), r.Keys())
	}
}

// Torn and corrupt reads, a hang that ends with the context, a delay.
func TestRuleFaults(t *testing.T) {
	inner := fileStore(t)
	st := storagetest.Wrap(inner, &storagetest.Rule{Key: "a/1", Body: storagetest.Cut(4, nil), Times: 1})
	if got, err := read(st, "a/1"); got != "0123" || err != io.ErrUnexpectedEOF {
		t.Fatalf("torn read: %q, %v", got, err)
	}
	if got, err := read(st, "a/1"); got != "0123456789" || err != nil {
		t.Fatalf("after the one torn read: %q, %v", got, err)
	}
	st = storagetest.Wrap(inner, &storagetest.Rule{Key: "a/1", Body: storagetest.Flip(3)})
	if got, _ := read(st, "a/1"); got != "012\xcc456789" {
		t.Fatalf("flipped: %q", got)
	}
	st = storagetest.Wrap(inner, &storagetest.Rule{Op: storagetest.Put, Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := st.Put(ctx, "c", nil, storage.PutOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging put: %v", err)
	}
	r := &storagetest.Rule{Op: storagetest.ListDir, Delay: 30 * time.Millisecond}
	st = storagetest.Wrap(inner, r)
	start := time.Now()
	if _, dirs, err := st.ListDir(context.Background(), ""); err != nil || len(dirs) != 2 || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("delayed list: %v, %v after %v", dirs, err, time.Since(start))
	}
	if r.Peak() != 1 || r.Count("") != 1 {
		t.Fatalf("peak %d, keys %q", r.Peak(), r.Keys())
	}
}
