package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/walship/walship/internal/catalog"
)

// Pushing the same segment twice is fine, also when the journal that would
// short-cut the second push is gone: the store is asked, the bytes compared,
// and the stored object is left as it was.
func TestConflictIdenticalRepushSucceeds(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "conflict")
	dir := cliDataDir(t, w.controlA)
	seg := w.segA[0]
	path := cliPlace(t, dir, seg.name, seg.data)

	cliExpect(t, cliRun(t, dir, env, "wal-push", path), 0)
	before := cliObjects(t, m, "conflict")

	if err := os.RemoveAll(filepath.Join(dir, "pg_wal", "walship")); err != nil {
		t.Fatal(err)
	}
	r := cliRun(t, dir, append(env, "WALSHIP_VERBOSE=true"), "wal-push", path)
	cliExpect(t, r, 0, "archived", seg.name)
	if r.stdout != "" {
		t.Errorf("wal-push printed to stdout: %q", r.stdout)
	}

	keys := m.ListObjects(t, "conflict", catalog.WALPrefix)
	if want := []string{cliKey(t, seg.name)}; !slices.Equal(keys, want) {
		t.Errorf("objects under wal/: %v, want exactly %v", keys, want)
	}
	if after := cliObjects(t, m, "conflict"); !slices.Equal(after, before) {
		t.Errorf("the repository changed on an identical re-push:\nbefore %v\nafter  %v", before, after)
	}
	got, ok := storedFile(t, m, "conflict", "", seg.name, nil)
	if !ok || !bytes.Equal(got, seg.data) {
		t.Errorf("stored object (found %v) does not decode to the segment", ok)
	}
}

// A different file under a name already archived is refused and the stored
// object is kept: that is split brain or a reused repository.
func TestConflictDifferentContentRefused(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "conflict")
	seg := w.segA[0]
	dir := cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, dir, env, "wal-push", cliPlace(t, dir, seg.name, seg.data)), 0)
	before := cliObjects(t, m, "conflict")

	// The same segment as another server of the same system might have
	// written it: a valid header, one byte different in the body.
	changed := bytes.Clone(seg.data)
	changed[1000] ^= 0xff
	dir2 := cliDataDir(t, w.controlA)
	path2 := cliPlace(t, dir2, seg.name, changed)
	r := cliRun(t, dir2, env, "wal-push", path2)
	cliExpect(t, r, 1, seg.name, "differs", "split brain", "kept")
	cliOneMessage(t, r)

	// PostgreSQL retries a failed archive_command: the answer stays the same.
	r = cliRun(t, dir2, env, "wal-push", path2)
	cliExpect(t, r, 1, "split brain")

	if after := cliObjects(t, m, "conflict"); !slices.Equal(after, before) {
		t.Errorf("the repository changed after a refused push:\nbefore %v\nafter  %v", before, after)
	}
	got, ok := storedFile(t, m, "conflict", "", seg.name, nil)
	if !ok {
		t.Fatal("the stored segment is gone")
	}
	if !bytes.Equal(got, seg.data) {
		t.Errorf("the stored segment no longer decodes to the original bytes (differs at byte 1000: %v)", got[1000] != seg.data[1000])
	}
	if ents, _ := os.ReadDir(filepath.Join(dir2, "pg_wal", "walship", "journal")); len(ents) != 0 {
		t.Errorf("the journal records the refused file as shipped: %v", ents)
	}
}

// A repository belongs to the system that pushed first; another system's
// segments and history files are refused with both identifiers and the fix.
func TestConflictOtherSystemRefused(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "conflict")
	dirA := cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, dirA, env, "wal-push", cliPlace(t, dirA, w.segA[0].name, w.segA[0].data)), 0)
	before := cliObjects(t, m, "conflict")

	var id catalog.Identity
	if err := json.Unmarshal(cliGetObject(t, m, "conflict", catalog.IdentityKey), &id); err != nil || id.SystemID != w.sysA {
		t.Fatalf("identity record: %+v (%v), want system %d", id, err, w.sysA)
	}

	dirB := cliDataDir(t, w.controlB)
	idA, idB := strconv.FormatUint(w.sysA, 10), strconv.FormatUint(w.sysB, 10)
	r := cliRun(t, dirB, env, "wal-push", cliPlace(t, dirB, w.segB.name, w.segB.data))
	cliExpect(t, r, 1, idA, idB, "new, empty location")
	cliOneMessage(t, r)

	// A history file carries no system id; walship takes it from pg_control.
	r = cliRun(t, dirB, env, "wal-push", cliPlace(t, dirB, "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n")))
	cliExpect(t, r, 1, idA, idB, "new, empty location")

	if after := cliObjects(t, m, "conflict"); !slices.Equal(after, before) {
		t.Errorf("the repository changed after another system's pushes:\nbefore %v\nafter  %v", before, after)
	}
	if got, ok := storedFile(t, m, "conflict", "", w.segB.name, nil); ok && bytes.Equal(got, w.segB.data) {
		t.Errorf("system %d's segment %s was stored", w.sysB, w.segB.name)
	}
}

// History files are never overwritten; an identical one is accepted again.
func TestConflictHistoryNeverOverwritten(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "conflict")
	const name = "00000002.history"
	first := []byte("1\t0/3000000\tno recovery target specified\n")
	second := []byte("1\t0/5000000\tno recovery target specified\n")

	dir := cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, dir, env, "wal-push", cliPlace(t, dir, name, first)), 0)
	if got, ok := storedFile(t, m, "conflict", "", name, nil); !ok || !bytes.Equal(got, first) {
		t.Fatalf("stored history file (found %v): %q, want %q", ok, got, first)
	}
	if keys := m.ListObjects(t, "conflict", catalog.WALPrefix); !slices.Equal(keys, []string{"wal/" + name}) {
		t.Errorf("history file stored as %v, want wal/%s", keys, name)
	}
	before := cliObjects(t, m, "conflict")

	dir2 := cliDataDir(t, w.controlA)
	r := cliRun(t, dir2, env, "wal-push", cliPlace(t, dir2, name, second))
	cliExpect(t, r, 1, name, "never overwritten")
	cliOneMessage(t, r)
	if got, _ := storedFile(t, m, "conflict", "", name, nil); !bytes.Equal(got, first) {
		t.Errorf("stored history file is %q after a refused push, want %q", got, first)
	}
	if after := cliObjects(t, m, "conflict"); !slices.Equal(after, before) {
		t.Errorf("the repository changed:\nbefore %v\nafter  %v", before, after)
	}

	// The identical file from a fresh pg_wal (no journal to short-cut it).
	dir3 := cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, dir3, env, "wal-push", cliPlace(t, dir3, name, first)), 0)
	if after := cliObjects(t, m, "conflict"); !slices.Equal(after, before) {
		t.Errorf("the repository changed on an identical re-push:\nbefore %v\nafter  %v", before, after)
	}
}
