package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// ProbePrefix is where ProveConditionalPut writes its probe objects.
const ProbePrefix = "walship-probe/"

// ProveConditionalPut shows whether st refuses to overwrite an object on a
// Put with IfNotExists: some S3-compatible stores ignore If-None-Match and
// overwrite silently, which would break the never-overwrite guarantee. It
// writes a probe object under ProbePrefix, writes other bytes to the same
// key, and reports true when the second write was refused (ErrExists) and
// the first bytes are still there, false when the store overwrote them. The
// probe is deleted either way. An error means the store could not be asked.
func ProveConditionalPut(ctx context.Context, st Store) (bool, error) {
	key := ProbePrefix + randomName()
	first := []byte("walship conditional write probe, first write " + key)
	second := []byte("walship conditional write probe, second write " + key)
	// An ErrExists here can only be our own earlier attempt that the retry
	// wrapper repeated: the key is random. The second write decides.
	if err := st.Put(ctx, key, first, PutOptions{IfNotExists: true}); err != nil && !errors.Is(err, ErrExists) {
		return false, fmt.Errorf("writing the conditional write probe: %w", err)
	}
	defer st.Delete(context.WithoutCancel(ctx), key)
	err := st.Put(ctx, key, second, PutOptions{IfNotExists: true})
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, ErrExists):
		return false, fmt.Errorf("writing the conditional write probe a second time: %w", err)
	}
	same, err := Holds(ctx, st, key, first)
	if err != nil {
		return false, fmt.Errorf("reading the conditional write probe back: %w", err)
	}
	// Refused yet changed: the store cannot be trusted with the guarantee.
	return same, nil
}

// PutNew stores data under key only if no object is there, and returns
// ErrExists otherwise: the caller then compares what is stored with data.
//
// proven says ProveConditionalPut showed that st refuses a second
// conditional write: one Put with IfNotExists is then atomic. Otherwise
// PutNew checks for an object first, writes, and reads the object back: a
// concurrent writer that got in between (the store did not stop it) makes
// the object differ from data, and PutNew returns ErrExists rather than
// report success for bytes that are not ours. Two writers racing on such a
// store can still overwrite each other; only the check narrows the window.
func PutNew(ctx context.Context, st Store, key string, data []byte, proven bool) error {
	if proven {
		return st.Put(ctx, key, data, PutOptions{IfNotExists: true})
	}
	_, err := st.Stat(ctx, key)
	switch {
	case err == nil:
		return fmt.Errorf("put %s in %s: %w", key, st, ErrExists)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	// Still conditional: a store that honours it after all closes the race.
	if err := st.Put(ctx, key, data, PutOptions{IfNotExists: true}); err != nil {
		return err
	}
	same, err := Holds(ctx, st, key, data)
	if err != nil {
		return fmt.Errorf("reading %s back from %s after writing it: %w", key, st, err)
	}
	if !same {
		return fmt.Errorf("put %s in %s: another writer stored different bytes at the same time: %w", key, st, ErrExists)
	}
	return nil
}

// holds reports whether the object under key is exactly want.
func Holds(ctx context.Context, st Store, key string, want []byte) (bool, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	// One byte more than want tells a longer object from an equal one.
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, want), nil
}

func randomName() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
