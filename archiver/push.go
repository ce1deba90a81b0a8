// Package archiver puts data into the repository: the WAL push pipeline
// (wal-push, its look-ahead, and the resident agent).
package archiver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/walshipdir"
)

// ErrConflict: a different file is already stored under the same name. A
// fault.ErrConflict.
var ErrConflict = fault.Sentinel(fault.ErrConflict, "a different file is already archived under this name")

// Shipper ships files from one pg_wal directory to one repository. It is safe
// for concurrent use; concurrent pushes of the same name share one upload.
type Shipper struct {
	Store    storage.Store
	Encoder  *codec.Encoder
	WALDir   string
	Parallel int // files in flight at once, the requested one included
	Log      *slog.Logger
	// RepoKey, when set, is the repository key: objects are authenticated
	// with a MAC, and only a repository whose record it signed is written to.
	RepoKey []byte

	flight singleflight.Group
	idMu   sync.Mutex
	// id is the repository's identity as last read from the store, at
	// idRead; journal is the journal of shipments to that very repository.
	// Both are nil until the identity was read: the journal is only
	// trusted for the repository instance it was written for.
	id      *catalog.Identity
	idRead  time.Time
	journal *Journal
	encoder *codec.Encoder // Encoder, with the MAC key of id's repository
	// conditional: the store was shown to refuse a second conditional
	// write; otherwise puts check before and read back after (storage.PutNew).
	conditional bool
	// idErr is why the last reading or check of the identity failed; nil
	// once it succeeds.
	idErr error
}

// identityTTL is how long a long-running shipper (the agent) trusts the
// identity it read before reading it again: a repository emptied or
// recreated at the same location is noticed within it. A wal-push process
// reads it once.
var identityTTL = time.Minute

// NewShipper prepares a shipper for walDir (PostgreSQL's pg_wal).
func NewShipper(st storage.Store, enc *codec.Encoder, walDir string, parallel int, log *slog.Logger) (*Shipper, error) {
	if err := os.MkdirAll(walshipdir.Dir(walDir), 0o700); err != nil {
		return nil, fmt.Errorf("preparing %s: %w", walshipdir.Dir(walDir), err)
	}
	if parallel < 1 {
		parallel = 1
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Shipper{Store: st, Encoder: enc, WALDir: walDir, Parallel: parallel, Log: log}, nil
}

// Push makes sure the file name in pg_wal is durably in the repository. It
// returns nil only once the store confirmed the object, or when the same
// content was already there.
func (s *Shipper) Push(ctx context.Context, name string) error {
	_, err, _ := s.flight.Do(name, func() (any, error) { return nil, s.push(ctx, name) })
	return err
}

func (s *Shipper) push(ctx context.Context, name string) error {
	path := filepath.Join(s.WALDir, name)
	kind := pg.KindOf(name)
	if kind == pg.KindUnknown {
		return fmt.Errorf("%s is not a file walship archives: expected a WAL segment, .partial, .backup or .history file", path)
	}
	if j, err := s.currentJournal(ctx); err != nil {
		return err
	} else if j != nil && j.Matches(name, path) {
		return nil
	}
	if err := s.validate(ctx, name, path, kind); err != nil {
		return err
	}
	key, _ := catalog.WALKey(name)
	before, err := Snapshot(path)
	if err != nil {
		return err
	}
	obj, h, err := s.currentEncoder().EncodeFile(path, name)
	if err != nil {
		return err
	}
	if after, err := Snapshot(path); err != nil || after != before {
		return fmt.Errorf("%s changed while it was being archived; nothing was stored", path)
	}
	err = storage.PutNew(ctx, s.Store, key, obj, s.conditionalProven())
	if err == nil {
		// Only after a clean put: a cancelled HTTP request may still read
		// its body for a moment after it returned.
		defer codec.Release(obj)
	}
	if errors.Is(err, storage.ErrExists) {
		err = s.compareExisting(ctx, key, name, h)
	}
	if err != nil {
		return err
	}
	s.Log.Info("archived", "file", name, "bytes", h.Size, "stored", len(obj))
	before.Sum = h.Checksum
	if j := s.knownJournal(); j != nil {
		if err := j.Record(name, before); err != nil {
			s.Log.Warn("could not record in journal", "file", name, "err", err)
		}
	}
	return nil
}

// compareExisting decides whether an object already under key holds the same
// bytes (an identical re-push, fine) or others (refused, never overwritten).
func (s *Shipper) compareExisting(ctx context.Context, key, name string, h codec.Header) error {
	rc, err := s.Store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("%s is already archived but could not be read to compare: %w", name, err)
	}
	defer rc.Close()
	var src io.Reader = rc
	if macKey := s.currentEncoder().MACKey; macKey != nil {
		// Only an object this repository's writers made counts as the same.
		obj, err := io.ReadAll(io.LimitReader(rc, maxStoredObject))
		if err != nil {
			return fmt.Errorf("%s is already archived but could not be read to compare: %w", name, err)
		}
		if err := codec.VerifyObject(obj, macKey); err != nil {
			return fmt.Errorf("%w: %s is already archived, but %v; it was not overwritten: inspect %s in %s", ErrConflict, name, err, key, s.Store)
		}
		src = bytes.NewReader(obj)
	}
	old, err := codec.ReadHeader(src)
	if err != nil {
		return fmt.Errorf("%s is already archived but the stored object is unreadable (%v); it was not overwritten: inspect %s in %s", name, err, key, s.Store)
	}
	stored, local := old.Checksum, h.Checksum
	if stored != "" && stored == local && old.Size == h.Size {
		return nil
	}
	what := "This usually means two servers archive into one repository (split brain) or the repository was reused; the stored file was kept."
	if pg.KindOf(name) == pg.KindHistory {
		what = "History files are never overwritten: two servers promoted to the same timeline, or the repository was reused."
	}
	return fmt.Errorf("%w: %s in %s differs from the local file (stored checksum %s, local %s). %s",
		ErrConflict, name, s.Store, short(stored), short(local), what)
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// maxStoredObject bounds what is read of an object already stored under a
// WAL file's name: PostgreSQL's largest segment, encoded, with room to spare.
const maxStoredObject = 2 << 30

var (
	historyLineRe = regexp.MustCompile(`^\d+\s+[0-9A-Fa-f]+/[0-9A-Fa-f]+(\s.*)?$`)
	maxTextFile   = int64(1 << 20)
)

// validate refuses what is not a file PostgreSQL would archive, and segments
// of another database system.
func (s *Shipper) validate(ctx context.Context, name, path string, kind pg.Kind) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	switch kind {
	case pg.KindSegment, pg.KindPartial:
		h, err := pg.ReadSegmentHeader(path, name)
		if err != nil {
			return err
		}
		if fi.Size() != int64(h.SegSize) {
			return fmt.Errorf("%s: size %d does not match the segment size %d in its header (incomplete file?)", name, fi.Size(), h.SegSize)
		}
		return s.checkSystem(ctx, h.SystemID, h.SegSize, true)
	default:
		if fi.Size() > maxTextFile {
			return fmt.Errorf("%s: %d bytes is too large for a %s", name, fi.Size(), kind)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := validateText(kind, data); err != nil {
			return fmt.Errorf("%s: not a valid %s: %v", name, kind, err)
		}
		// Text files carry no system id; the server's control file does,
		// and any segment in pg_wal the segment size, to claim a new
		// repository with.
		sys, err := pg.ControlSystemID(filepath.Dir(s.WALDir))
		if err != nil {
			if s.RepoKey != nil {
				return fmt.Errorf("%s: cannot read the server's system identifier to check the repository: %w", name, err)
			}
			return nil
		}
		segSize := s.segmentSizeInWALDir(sys)
		return s.checkSystem(ctx, sys, segSize, segSize != 0)
	}
}

func validateText(kind pg.Kind, data []byte) error {
	if bytes.IndexByte(data, 0) >= 0 {
		return errors.New("binary content")
	}
	if kind == pg.KindBackup {
		if !bytes.Contains(data, []byte("START WAL LOCATION:")) {
			return errors.New("no START WAL LOCATION line")
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !historyLineRe.MatchString(line) {
			return fmt.Errorf("unexpected line %q", line)
		}
	}
	return nil
}

// checkSystem confirms that the repository belongs to systemID and that
// this configuration may write to it, reading its identity from the store
// once per process (once per identityTTL in the agent). With claim (the
// segment size is known), a new repository is claimed; otherwise a new
// repository passes, and its first segment claims it.
func (s *Shipper) checkSystem(ctx context.Context, systemID uint64, segSize uint32, claim bool) error {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if !claim {
		segSize = 0
	}
	if err := s.refreshIdentity(ctx, systemID, segSize); err != nil {
		return err
	}
	switch {
	case s.id == nil && s.RepoKey != nil:
		return fmt.Errorf("%s has no identity record yet, and an authenticated object needs one: the first WAL segment archived creates it", s.Store)
	case s.id != nil && s.id.SystemID != systemID:
		s.idErr = catalog.WrongSystem(s.Store, s.id.SystemID, systemID)
		return s.idErr
	}
	return nil
}

// refreshIdentity reads the repository's identity unless the one held is
// fresh, checks that this configuration may write to it and opens its
// journal. A repository without one is claimed for systemID when segSize
// is known, else left without (s.id nil). Called with idMu held.
func (s *Shipper) refreshIdentity(ctx context.Context, systemID uint64, segSize uint32) error {
	if s.id != nil && time.Since(s.idRead) < identityTTL {
		return nil
	}
	var id catalog.Identity
	var err error
	if segSize != 0 {
		id, err = catalog.EnsureIdentity(ctx, s.Store, systemID, segSize, s.protection())
	} else if id, err = catalog.LoadIdentity(ctx, s.Store); errors.Is(err, storage.ErrNotFound) {
		s.id, s.journal, s.encoder, s.idErr = nil, nil, nil, nil
		return nil
	} else if err == nil {
		if err = id.CheckWriter(s.protection()); err != nil {
			err = fmt.Errorf("%s: %w", s.Store, err)
		}
	}
	if err != nil {
		s.idErr = err
		return err
	}
	return s.setIdentity(id)
}

// protection is what this shipper's configuration holds.
func (s *Shipper) protection() catalog.Protection {
	return catalog.Protection{Encrypts: len(s.Encoder.Recipients) > 0, Key: s.RepoKey}
}

// segmentSizeInWALDir is the segment size in the header of a segment of
// systemID in pg_wal, or 0 when there is none.
func (s *Shipper) segmentSizeInWALDir(systemID uint64) uint32 {
	ents, _ := os.ReadDir(s.WALDir)
	for _, e := range ents {
		if pg.KindOf(e.Name()) != pg.KindSegment {
			continue
		}
		if h, err := pg.ReadSegmentHeader(filepath.Join(s.WALDir, e.Name()), e.Name()); err == nil && h.SystemID == systemID {
			return h.SegSize
		}
	}
	return 0
}

// currentJournal is the journal of the repository instance the store holds
// now, reading the identity when it is not fresh; nil for a repository
// without one yet (nothing shipped there can be trusted).
func (s *Shipper) currentJournal(ctx context.Context) (*Journal, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if err := s.refreshIdentity(ctx, 0, 0); err != nil {
		return nil, err
	}
	return s.journal, nil
}

// knownJournal is the journal of the identity last read, without a store call.
func (s *Shipper) knownJournal() *Journal {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return s.journal
}

// setIdentity records the identity just read and opens its journal. Called
// with idMu held.
func (s *Shipper) setIdentity(id catalog.Identity) error {
	if s.id == nil || s.id.ID() != id.ID() || s.journal == nil {
		j, err := OpenJournal(s.WALDir, storage.Location(s.Store), id.ID())
		if err != nil {
			return fmt.Errorf("opening the push journal in %s: %w", s.WALDir, err)
		}
		s.journal = j
		s.conditional = s.proveConditionalWrites(j)
	}
	s.encoder = id.Encoder(s.Encoder, s.protection())
	s.id, s.idRead, s.idErr = &id, time.Now(), nil
	return nil
}

// RepositoryProof tells what this shipper has proven about its repository:
// the ID of the repository instance whose identity it last read and accepted
// for this configuration ("" before that, when the store holds none yet, or
// when the last reading or check failed: then err says why), when it read
// it, and whether the store was shown to refuse a second conditional write.
func (s *Shipper) RepositoryProof() (id string, readAt time.Time, conditional bool, err error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.id != nil && s.idErr == nil {
		id, readAt = s.id.ID(), s.idRead
	}
	return id, readAt, s.conditional, s.idErr
}

// proveConditionalWrites tells whether the store refuses a second
// conditional write, from the journal's record or, once per repository, by
// asking it. Until proven, pushes use the slower check-write-read-back.
func (s *Shipper) proveConditionalWrites(j *Journal) bool {
	if proven, known := j.ConditionalWrites(); known {
		return proven
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proven, err := storage.ProveConditionalPut(ctx, s.Store)
	if err != nil {
		s.Log.Warn("could not prove that the store refuses overwrites; checking before and after each upload", "err", err)
		return false
	}
	if !proven {
		s.Log.Warn("the store ignores conditional writes (If-None-Match): each upload is checked before and read back after, which two servers archiving at once can still race; use a store that honours them")
	}
	if err := j.RecordConditionalWrites(proven); err != nil {
		s.Log.Warn("could not record the store's conditional writes", "err", err)
	}
	return proven
}

func (s *Shipper) conditionalProven() bool {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return s.conditional
}

// currentEncoder is the encoder for the repository last confirmed: with its
// MAC key when a repository key is configured.
func (s *Shipper) currentEncoder() *codec.Encoder {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.encoder == nil {
		return s.Encoder
	}
	return s.encoder
}

// Shipped reports whether the journal of the repository last confirmed
// lists name, without checking the file or calling the store.
func (s *Shipper) Shipped(name string) bool {
	j := s.knownJournal()
	return j != nil && j.Has(name)
}

// PruneJournal drops journal entries of files gone from pg_wal.
func (s *Shipper) PruneJournal() {
	if j := s.knownJournal(); j != nil {
		j.Prune(s.WALDir)
	}
}

// Ready lists files PostgreSQL has marked ready for archiving, in the order
// its archiver would take them: history files first, then by name.
func (s *Shipper) Ready() []string {
	ents, err := os.ReadDir(filepath.Join(s.WALDir, "archive_status"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".ready"); ok && pg.KindOf(n) != pg.KindUnknown {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		hi, hj := pg.KindOf(names[i]) == pg.KindHistory, pg.KindOf(names[j]) == pg.KindHistory
		if hi != hj {
			return hi
		}
		return names[i] < names[j]
	})
	return names
}

// PushWithLookahead pushes name and, in parallel, up to Parallel-1 other
// ready files not yet shipped, so PostgreSQL's next calls find them done.
// Only name's outcome decides the result; the others are best effort.
func (s *Shipper) PushWithLookahead(ctx context.Context, name string) error {
	// Read the identity first: the look-ahead skips what the journal of
	// this repository instance lists. An error here would be name's push's
	// too, after a second wait through the retry budget: return it now.
	if _, err := s.currentJournal(ctx); err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(s.Parallel)
	var result error
	g.Go(func() error { result = s.Push(ctx, name); return nil })
	extra := 0
	for _, other := range s.Ready() {
		if extra >= s.Parallel-1 {
			break
		}
		if other == name || s.Shipped(other) {
			continue
		}
		extra++
		g.Go(func() error {
			if err := s.Push(ctx, other); err != nil {
				s.Log.Warn("look-ahead push failed; PostgreSQL will retry it", "file", other, "err", err)
			}
			return nil
		})
	}
	g.Wait()
	s.PruneJournal()
	return result
}
