package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

// The store's sentinels are the kinds every package decides on.
func TestStoreErrorKinds(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	if _, err := st.Get(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) || !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("get of a missing object: %v, want a fault.ErrNotFound", err)
	}
	if err := st.Put(ctx, "k", []byte("a"), storage.PutOptions{IfNotExists: true}); err != nil {
		t.Fatal(err)
	}
	err := st.Put(ctx, "k", []byte("b"), storage.PutOptions{IfNotExists: true})
	if !errors.Is(err, storage.ErrExists) || !errors.Is(err, fault.ErrConflict) || errors.Is(err, fault.ErrNotFound) {
		t.Errorf("conditional put on a taken key: %v, want a fault.ErrConflict", err)
	}

	// Retried out: transient. A final error is returned as it is.
	f, _ := flaky(t, storagetest.Put, 100, errFlaky)
	err = storage.WithRetry(f, time.Minute, 3).Put(ctx, "k2", []byte("v"), storage.PutOptions{})
	if !errors.Is(err, fault.ErrTransient) || !errors.Is(err, errFlaky) {
		t.Errorf("retried-out put: %v, want a fault.ErrTransient", err)
	}
	f, _ = flaky(t, storagetest.Get, 5, storage.ErrNotFound)
	if _, err := storage.WithRetry(f, time.Minute, 3).Get(ctx, "k"); errors.Is(err, fault.ErrTransient) {
		t.Errorf("missing object through the retry wrapper: %v is a fault.ErrTransient", err)
	}
}
