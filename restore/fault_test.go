package restore

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

// wal-fetch's failures are of the kinds a caller decides on with errors.Is:
// only a missing file in the expected repository is fault.ErrNotFound.
func TestFetchErrorKinds(t *testing.T) {
	ctx := context.Background()
	st, dest, _ := setup(t, 1)
	name := pg.Segment{Timeline: 1, Seg: 1}.Name()
	missing := pg.Segment{Timeline: 1, Seg: 2}.Name()
	kinds := []error{fault.ErrNotFound, fault.ErrConflict, fault.ErrRepositoryMissing, fault.ErrIdentityMismatch, fault.ErrIntegrity, fault.ErrTransient}
	is := func(what string, err, want error) {
		t.Helper()
		for _, k := range kinds {
			if got := errors.Is(err, k); got != (k == want) {
				t.Errorf("%s: %v\nerrors.Is(err, %q) = %v", what, err, k, got)
			}
		}
	}

	is("missing segment", (&Fetcher{Store: st, Decoder: &codec.Decoder{}}).Fetch(ctx, missing, dest), fault.ErrNotFound)

	empty, err := storage.Open(ctx, "file://"+filepath.Join(t.TempDir(), "nothing"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	is("no repository", (&Fetcher{Store: empty, Decoder: &codec.Decoder{}}).Fetch(ctx, missing, dest), fault.ErrRepositoryMissing)

	is("another system", (&Fetcher{Store: st, Decoder: &codec.Decoder{}, SystemID: 8}).Fetch(ctx, missing, dest), fault.ErrIdentityMismatch)

	// A plain object where every object must be encrypted was planted.
	tampered := &Fetcher{Store: st, Decoder: &codec.Decoder{RequireEncryption: true}}
	err = tampered.Fetch(ctx, name, dest)
	if !errors.Is(err, codec.ErrTampered) {
		t.Errorf("plain object in an encrypted repository: %v, want codec.ErrTampered", err)
	}
	is("tampered object", err, fault.ErrIntegrity)

	key, _ := catalog.WALKey(name)
	rc, _ := st.Get(ctx, key)
	obj, _ := io.ReadAll(rc)
	rc.Close()
	st.Delete(ctx, key)
	st.Put(ctx, key, obj[:len(obj)-1000], storage.PutOptions{})
	is("truncated object", (&Fetcher{Store: st, Decoder: &codec.Decoder{}}).Fetch(ctx, name, dest), fault.ErrIntegrity)

	// A store that stays down outlasts the retries.
	down := storage.WithRetry(&storagetest.Store{Name: "s3://down", Rules: []*storagetest.Rule{{Err: errors.New("dial tcp 127.0.0.1:9: connection refused")}}},
		300*time.Millisecond, 3)
	is("store down", (&Fetcher{Store: down, Decoder: &codec.Decoder{}}).Fetch(ctx, name, dest), fault.ErrTransient)
}
