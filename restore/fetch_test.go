package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/spool"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

const segSize = 1 << 20

func setup(t *testing.T, n int) (storage.Store, string, map[string][]byte) {
	dir := t.TempDir()
	st, err := storage.Open(context.Background(), "file://"+filepath.Join(dir, "repo"), storage.Options{RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := catalog.EnsureIdentity(ctx, st, 7, segSize, catalog.Protection{}); err != nil {
		t.Fatal(err)
	}
	segs := map[string][]byte{}
	for i := 1; i <= n; i++ {
		name := pg.Segment{Timeline: 1, Seg: uint32(i)}.Name()
		data := pg.FakeSegment(name, 7, segSize, uint64(i))
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o600)
		obj, _, err := (&codec.Encoder{}).EncodeFile(path, name)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := catalog.WALKey(name)
		if err := st.Put(ctx, key, obj, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		segs[name] = data
	}
	pgWal := filepath.Join(dir, "data", "pg_wal")
	os.MkdirAll(pgWal, 0o700)
	return st, filepath.Join(pgWal, "RECOVERYXLOG"), segs
}

func TestFetchWritesVerifiedFile(t *testing.T) {
	st, dest, segs := setup(t, 1)
	f := &Fetcher{Store: st, Decoder: &codec.Decoder{}}
	name := pg.Segment{Timeline: 1, Seg: 1}.Name()
	if err := f.Fetch(context.Background(), name, dest); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, segs[name]) {
		t.Fatal("fetched bytes differ")
	}
	err := f.Fetch(context.Background(), pg.Segment{Timeline: 1, Seg: 2}.Name(), dest+"2")
	if !errors.Is(err, ErrNotInArchive) {
		t.Fatalf("missing segment: %v", err)
	}
	if _, err := os.Stat(dest + "2"); !os.IsNotExist(err) {
		t.Fatal("missing segment left a file")
	}
}

func TestCorruptObjectFailsLoudly(t *testing.T) {
	st, dest, _ := setup(t, 1)
	name := pg.Segment{Timeline: 1, Seg: 1}.Name()
	key, _ := catalog.WALKey(name)
	rc, _ := st.Get(context.Background(), key)
	obj, _ := io.ReadAll(rc)
	rc.Close()
	st.Delete(context.Background(), key)
	st.Put(context.Background(), key, obj[:len(obj)-1000], storage.PutOptions{})
	err := (&Fetcher{Store: st, Decoder: &codec.Decoder{}}).Fetch(context.Background(), name, dest)
	if err == nil || errors.Is(err, ErrNotInArchive) || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), name) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("corrupt object produced a destination file")
	}
}

func TestOutageIsNotNotFound(t *testing.T) {
	_, dest, _ := setup(t, 0)
	// A store that fails every call as an outage would.
	down := &storagetest.Store{Name: "s3://down", Rules: []*storagetest.Rule{{Err: errors.New("dial tcp 127.0.0.1:9: connection refused")}}}
	f := &Fetcher{Store: down, Decoder: &codec.Decoder{}}
	err := f.Fetch(context.Background(), "000000010000000000000001", dest)
	if err == nil || errors.Is(err, ErrNotInArchive) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v", err)
	}
}

// cutStore cuts the first cuts downloads (every one when cuts is 0) off
// half-way, as a dropped connection does.
func cutStore(st storage.Store, cuts int) storage.Store {
	return storagetest.Wrap(st, &storagetest.Rule{Op: storagetest.Get, Times: cuts, Body: storagetest.Cut(2000, nil)})
}

func TestInterruptedDownloadIsRetried(t *testing.T) {
	st, dest, segs := setup(t, 1)
	name := pg.Segment{Timeline: 1, Seg: 1}.Name()
	f := &Fetcher{Store: cutStore(st, 2), Decoder: &codec.Decoder{}}
	if err := f.Fetch(context.Background(), name, dest); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, segs[name]) {
		t.Fatal("bytes differ after retried download")
	}
	// Cut every time: fails within the store's retry budget, and never as "not found".
	f = &Fetcher{Store: cutStore(st, 0), Decoder: &codec.Decoder{}}
	err := f.Fetch(context.Background(), name, dest+".2")
	if err == nil || errors.Is(err, ErrNotInArchive) || errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("got %v", err)
	}
}

// Files spooled before the machine restarted were written without fsync and
// may be torn: they are never handed to PostgreSQL.
func TestSpoolFromAnotherBootIsDiscarded(t *testing.T) {
	st, dest, _ := setup(t, 3)
	sp := spool.For(dest, "file:///test at ")
	f := &Fetcher{Store: st, Decoder: &codec.Decoder{}, Spool: sp}
	first := pg.Segment{Timeline: 1, Seg: 1}.Name()
	if err := f.Prefetch(context.Background(), first, dest, 8, 4); err != nil {
		t.Fatal(err)
	}
	second := pg.Segment{Timeline: 1, Seg: 2}.Name()
	os.WriteFile(filepath.Join(string(sp), ".boot"), []byte("another-boot"), 0o600)
	if sp.Take(context.Background(), second, dest) {
		t.Fatal("a file spooled before a restart was used")
	}
	if _, err := os.Stat(sp.Path(second)); !os.IsNotExist(err) {
		t.Fatal("the stale spool was not cleared")
	}
	// The store still serves it.
	if err := f.Fetch(context.Background(), second, dest); err != nil {
		t.Fatal(err)
	}
}
