package storage_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

func openFileStore(t *testing.T) storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), "file://"+filepath.Join(t.TempDir(), "repo"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A store that refuses a second conditional write is proven; one that
// ignores If-None-Match is not; the probe is gone either way.
func TestProveConditionalPut(t *testing.T) {
	stores := map[string]func(t *testing.T) storage.Store{
		"file":  openFileStore,
		"minio": func(t *testing.T) storage.Store { return storage.StartMinIOStore(t, "probe", "repo") },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			proveAndExpect(t, st, true)
			ignoring := storagetest.Wrap(st)
			ignoring.IgnoreIfNotExists = true
			proveAndExpect(t, ignoring, false)
		})
	}
}

func proveAndExpect(t *testing.T, st storage.Store, want bool) {
	t.Helper()
	ctx := context.Background()
	proven, err := storage.ProveConditionalPut(ctx, st)
	if err != nil || proven != want {
		t.Errorf("ProveConditionalPut = %v, %v; want %v", proven, err, want)
	}
	left, err := st.List(ctx, storage.ProbePrefix)
	if err != nil || len(left) != 0 {
		t.Errorf("probe objects left behind: %v, %v", left, err)
	}
}

// A store that cannot be reached is an error, not "unproven".
func TestProveConditionalPutUnreachable(t *testing.T) {
	st, err := storage.Open(context.Background(), "/dev/null/repo", storage.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if proven, err := storage.ProveConditionalPut(context.Background(), st); err == nil || proven {
		t.Errorf("ProveConditionalPut on an unusable store = %v, %v; want an error", proven, err)
	}
}

// PutNew on a store that ignores If-None-Match (not proven) never
// overwrites an object it can see and never reports success for bytes a
// concurrent writer replaced.
func TestPutNewFallback(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func(t *testing.T) storage.Store{
		"file":  openFileStore,
		"minio": func(t *testing.T) storage.Store { return storage.StartMinIOStore(t, "putnew", "") },
	} {
		t.Run(name, func(t *testing.T) {
			inner := open(t)
			st := storagetest.Wrap(inner)
			st.IgnoreIfNotExists = true

			if err := storage.PutNew(ctx, st, "wal/a", []byte("ours"), false); err != nil {
				t.Fatalf("PutNew of a new key: %v", err)
			}
			expectObject(t, inner, "wal/a", "ours")

			err := storage.PutNew(ctx, st, "wal/a", []byte("theirs"), false)
			if !errors.Is(err, storage.ErrExists) {
				t.Errorf("PutNew over an existing object: %v, want ErrExists", err)
			}
			expectObject(t, inner, "wal/a", "ours")

			// Another writer stores its bytes right after ours landed.
			st.AfterPut = func(ctx context.Context, key string) {
				if err := inner.Put(ctx, key, []byte("the other writer's"), storage.PutOptions{}); err != nil {
					t.Error(err)
				}
			}
			err = storage.PutNew(ctx, st, "wal/b", []byte("ours"), false)
			if !errors.Is(err, storage.ErrExists) {
				t.Errorf("PutNew overtaken by a concurrent writer: %v, want ErrExists", err)
			}
			st.AfterPut = nil

			// Proven: one conditional write, refused by the real store.
			if err := storage.PutNew(ctx, inner, "wal/c", []byte("ours"), true); err != nil {
				t.Fatalf("PutNew proven of a new key: %v", err)
			}
			if err := storage.PutNew(ctx, inner, "wal/c", []byte("theirs"), true); !errors.Is(err, storage.ErrExists) {
				t.Errorf("PutNew proven over an existing object: %v, want ErrExists", err)
			}
			expectObject(t, inner, "wal/c", "ours")
		})
	}
}

func expectObject(t *testing.T, st storage.Store, key, want string) {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != want {
		t.Errorf("%s holds %q (%v), want %q", key, got, err, want)
	}
}
