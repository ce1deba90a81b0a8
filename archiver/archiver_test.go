package archiver

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

const segSize = 1 << 20

type rig struct {
	t      *testing.T
	walDir string
	repo   string
	store  storage.Store
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	walDir := filepath.Join(dir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	repo := "file://" + filepath.Join(dir, "repo")
	st, err := storage.Open(context.Background(), repo, storage.Options{RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, walDir: walDir, repo: repo, store: st}
}

// segment writes a fake segment into pg_wal and marks it ready.
func (r *rig) segment(name string, system uint64, seed uint64) []byte {
	data := pg.FakeSegment(name, system, segSize, seed)
	r.file(name, data)
	return data
}

func (r *rig) file(name string, data []byte) {
	if err := os.WriteFile(filepath.Join(r.walDir, name), data, 0o600); err != nil {
		r.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r.walDir, "archive_status", name+".ready"), nil, 0o600)
}

func (r *rig) shipper(parallel int) *Shipper {
	s, err := NewShipper(r.store, &codec.Encoder{}, r.walDir, parallel, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// stored decodes what the repository holds for name.
func (r *rig) stored(name string) ([]byte, error) {
	key, _ := catalog.WALKey(name)
	rc, err := r.store.Get(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, err = (&codec.Decoder{}).Decode(rc, &buf, name)
	return buf.Bytes(), err
}

func TestPushStoresExactBytesAndClaimsRepository(t *testing.T) {
	r := newRig(t)
	data := r.segment("000000010000000000000001", 7, 1)
	if err := r.shipper(1).Push(context.Background(), "000000010000000000000001"); err != nil {
		t.Fatal(err)
	}
	got, err := r.stored("000000010000000000000001")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored bytes differ: %v", err)
	}
	id, err := catalog.LoadIdentity(context.Background(), r.store)
	if err != nil || id.SystemID != 7 || id.WALSegmentSize != segSize {
		t.Fatalf("identity %+v %v", id, err)
	}
}

func TestRepushIdenticalSucceedsConflictingFails(t *testing.T) {
	r := newRig(t)
	name := "000000010000000000000002"
	r.segment(name, 7, 1)
	if err := r.shipper(1).Push(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	// A fresh pg_wal (no journal) pushing the same bytes: idempotent.
	os.RemoveAll(filepath.Join(r.walDir, "walship"))
	if err := r.shipper(1).Push(context.Background(), name); err != nil {
		t.Fatalf("identical re-push failed: %v", err)
	}
	// Different bytes under the same name: refused, the stored file kept.
	original, _ := r.stored(name)
	r.segment(name, 7, 2)
	err := r.shipper(1).Push(context.Background(), name)
	if !errors.Is(err, ErrConflict) || !errors.Is(err, fault.ErrConflict) || !strings.Contains(err.Error(), "split brain") {
		t.Fatalf("conflicting push: %v", err)
	}
	if now, _ := r.stored(name); !bytes.Equal(now, original) {
		t.Fatal("stored segment was overwritten")
	}
}

func TestHistoryFileNeverOverwritten(t *testing.T) {
	r := newRig(t)
	r.file("00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	if err := r.shipper(1).Push(context.Background(), "00000002.history"); err != nil {
		t.Fatal(err)
	}
	r.file("00000002.history", []byte("1\t0/5000000\tno recovery target specified\n"))
	os.RemoveAll(filepath.Join(r.walDir, "walship"))
	err := r.shipper(1).Push(context.Background(), "00000002.history")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("got %v", err)
	}
	got, _ := r.stored("00000002.history")
	if !bytes.Contains(got, []byte("0/3000000")) {
		t.Fatalf("history overwritten: %q", got)
	}
}

func TestOtherSystemRefused(t *testing.T) {
	r := newRig(t)
	r.segment("000000010000000000000001", 7, 1)
	if err := r.shipper(1).Push(context.Background(), "000000010000000000000001"); err != nil {
		t.Fatal(err)
	}
	other := newRig(t)
	other.store = r.store
	other.segment("000000010000000000000002", 8, 1)
	err := other.shipper(1).Push(context.Background(), "000000010000000000000002")
	if !errors.Is(err, catalog.ErrWrongSystem) || !errors.Is(err, fault.ErrIdentityMismatch) || !strings.Contains(err.Error(), "new, empty location") {
		t.Fatalf("got %v", err)
	}
	if _, err := other.stored("000000010000000000000002"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("segment of another system was stored: %v", err)
	}
}

func TestNotWALRefused(t *testing.T) {
	r := newRig(t)
	r.file("000000010000000000000003", bytes.Repeat([]byte("hello"), segSize/5))
	err := r.shipper(1).Push(context.Background(), "000000010000000000000003")
	if err == nil || !strings.Contains(err.Error(), "not a WAL segment") {
		t.Fatalf("got %v", err)
	}
	r.file("00000003.history", []byte{0, 1, 2, 3})
	if err := r.shipper(1).Push(context.Background(), "00000003.history"); err == nil {
		t.Fatal("binary history file accepted")
	}
	seg := pg.FakeSegment("000000010000000000000004", 7, segSize, 1)
	r.file("000000010000000000000004", seg[:segSize/2])
	if err := r.shipper(1).Push(context.Background(), "000000010000000000000004"); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("half segment: %v", err)
	}
}

func TestLookaheadShipsReadySegmentsAndJournalAnswersLater(t *testing.T) {
	r := newRig(t)
	var names []string
	for i := 1; i <= 6; i++ {
		name := pg.Segment{Timeline: 1, Seg: uint32(i)}.Name()
		names = append(names, name)
		r.segment(name, 7, uint64(i))
	}
	s := r.shipper(4)
	if err := s.PushWithLookahead(context.Background(), names[0]); err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		_, err := r.stored(name)
		if i < 4 && err != nil {
			t.Errorf("%s should have been shipped ahead: %v", name, err)
		}
		if i >= 4 && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s shipped beyond the parallel limit: %v", name, err)
		}
	}
	// The journal answers for shipped segments even with the store gone.
	s.Store = brokenStore()
	if err := s.PushWithLookahead(context.Background(), names[1]); err != nil {
		t.Fatalf("journaled segment needed the store: %v", err)
	}
	// But not once the file changed: then the store is asked again.
	r.segment(names[2], 7, 99)
	if err := s.Push(context.Background(), names[2]); err == nil {
		t.Fatal("changed file was trusted from the journal")
	}
	// Same size, inode and modification time, other bytes: the checksum
	// tells.
	path := filepath.Join(r.walDir, names[3])
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("other bytes"), fi.Size()/2)
	f.Close()
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	if err := s.Push(context.Background(), names[3]); err == nil {
		t.Fatal("a file with the same size and time but other bytes was trusted from the journal")
	}
}

// brokenStore fails every call with "store down".
func brokenStore() *storagetest.Store {
	return &storagetest.Store{Name: "broken://", Rules: []*storagetest.Rule{{Err: errors.New("store down")}}}
}

// A file shipped to one repository says nothing about another: the journal
// must not let a push to the second one succeed without storing.
func TestJournalIsPerRepository(t *testing.T) {
	r := newRig(t)
	name := "000000010000000000000001"
	data := r.segment(name, 7, 1)
	if err := r.shipper(1).Push(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	second, err := storage.Open(context.Background(), r.repo+"-second", storage.Options{RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewShipper(second, &codec.Encoder{}, r.walDir, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Push(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	r.store = second
	if got, err := r.stored(name); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second repository does not hold %s: %v", name, err)
	}
}

// freshJournal forgets every shipment, as a new pg_wal would.
func (r *rig) freshJournal() {
	matches, _ := filepath.Glob(filepath.Join(r.walDir, "walship", "journal-*"))
	for _, m := range matches {
		os.RemoveAll(m)
	}
}

// A repository emptied or recreated at the same location is another
// repository: what the journal says was shipped to the old one must be
// shipped again, by a new wal-push process and by a long-running shipper
// (the agent) once its identity is stale.
func TestRecreatedRepositoryGetsEverySegmentAgain(t *testing.T) {
	r := newRig(t)
	var names []string
	for i := 1; i <= 4; i++ {
		name := pg.Segment{Timeline: 1, Seg: uint32(i)}.Name()
		names = append(names, name)
		r.segment(name, 7, uint64(i))
	}
	agent := r.shipper(4)
	if err := agent.PushWithLookahead(context.Background(), names[0]); err != nil {
		t.Fatal(err)
	}
	before, err := catalog.LoadIdentity(context.Background(), r.store)
	if err != nil {
		t.Fatal(err)
	}
	recreate := func() {
		root := strings.TrimPrefix(r.repo, "file://")
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(root, 0o700)
	}
	recreate()
	// A new wal-push process for each segment PostgreSQL still holds.
	for _, name := range names[:2] {
		if err := r.shipper(4).PushWithLookahead(context.Background(), name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, name := range names {
		if _, err := r.stored(name); err != nil {
			t.Errorf("%s is not in the recreated repository, though wal-push succeeded: %v", name, err)
		}
	}
	after, err := catalog.LoadIdentity(context.Background(), r.store)
	if err != nil || after.ID() == before.ID() {
		t.Fatalf("the recreated repository must have an identity of its own: %+v (before %+v) %v", after, before, err)
	}

	// The long-running shipper trusts its identity for identityTTL, then
	// reads it again.
	defer func(ttl time.Duration) { identityTTL = ttl }(identityTTL)
	identityTTL = 0
	recreate()
	if err := agent.Push(context.Background(), names[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.stored(names[2]); err != nil {
		t.Fatalf("the agent answered from the journal of the old repository: %v", err)
	}
}

// In an authenticated repository, an object planted under a segment's name
// with the same checksum in its header is not "the same file": a re-push
// finds it unauthenticated and refuses, instead of acknowledging bytes no
// writer with the key stored.
func TestRepushInAuthenticatedRepositoryChecksTheStoredMAC(t *testing.T) {
	r := newRig(t)
	name := "000000010000000000000004"
	data := r.segment(name, 7, 1)
	keyed := func() *Shipper {
		s := r.shipper(1)
		s.RepoKey = bytes.Repeat([]byte{9}, 32)
		return s
	}
	if err := keyed().Push(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	r.freshJournal()
	if err := keyed().Push(context.Background(), name); err != nil {
		t.Fatalf("identical re-push: %v", err)
	}
	var planted bytes.Buffer
	h := codec.Header{Name: name, Size: int64(len(data)), Checksum: checksumOf(data)}
	if err := (&codec.Encoder{}).Encode(&planted, h, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	key, _ := catalog.WALKey(name)
	r.store.Delete(context.Background(), key)
	if err := r.store.Put(context.Background(), key, planted.Bytes(), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r.freshJournal()
	err := keyed().Push(context.Background(), name)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "authentication") {
		t.Fatalf("re-push over a planted object: %v", err)
	}
}

func checksumOf(b []byte) string {
	h := codec.NewChecksum()
	h.Write(b)
	return codec.ChecksumOf(h)
}

// On a store that ignores If-None-Match, wal-push finds that out once (and
// records it), then checks before each upload: a second server's different
// segment under the same name is refused and the stored one kept, instead
// of overwriting it silently.
func TestPushOnAStoreThatIgnoresConditionalWrites(t *testing.T) {
	r := newRig(t)
	r.store = &storagetest.Store{Store: r.store, IgnoreIfNotExists: true}
	name := "000000010000000000000005"
	r.segment(name, 7, 1)
	if err := r.shipper(1).Push(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	original, _ := r.stored(name)
	proven, known := r.shipper(1).journalOf(t).ConditionalWrites()
	if proven || !known {
		t.Fatalf("the store's conditional writes: proven %v, known %v; want recorded as ignored", proven, known)
	}
	r.freshJournalEntries()
	r.segment(name, 7, 2)
	if err := r.shipper(1).Push(context.Background(), name); !errors.Is(err, ErrConflict) {
		t.Fatalf("a different segment under a stored name: %v", err)
	}
	if now, _ := r.stored(name); !bytes.Equal(now, original) {
		t.Fatal("the stored segment was overwritten")
	}
}

// journalOf reads the identity, as a push does, and returns the journal.
func (s *Shipper) journalOf(t *testing.T) *Journal {
	t.Helper()
	j, err := s.currentJournal(context.Background())
	if err != nil || j == nil {
		t.Fatalf("journal: %v", err)
	}
	return j
}

// freshJournalEntries forgets every shipment but keeps what the journal
// learnt of the store.
func (r *rig) freshJournalEntries() {
	dirs, _ := filepath.Glob(filepath.Join(r.walDir, "walship", "journal-*"))
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				os.Remove(filepath.Join(d, e.Name()))
			}
		}
	}
}

// A store that cannot be read fails a wal-push after one attempt to read
// the identity, not once for the look-ahead and again for every push it
// would start (each waiting through the retry budget).
func TestPushReadsAnUnreadableIdentityOnce(t *testing.T) {
	r := newRig(t)
	for i := 1; i <= 4; i++ {
		name := pg.Segment{Timeline: 1, Seg: uint32(i)}.Name()
		r.segment(name, 7, uint64(i))
	}
	down := &storagetest.Rule{Op: storagetest.Get, Key: catalog.IdentityKey, Err: errors.New("store down")}
	r.store = storagetest.Wrap(r.store, down)
	err := r.shipper(4).PushWithLookahead(context.Background(), pg.Segment{Timeline: 1, Seg: 1}.Name())
	if err == nil || !strings.Contains(err.Error(), "store down") {
		t.Fatalf("push with the store down: %v", err)
	}
	if n := down.Calls(); n != 1 {
		t.Errorf("the identity was read %d times, want once", n)
	}
}
