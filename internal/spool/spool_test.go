package spool

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/internal/pg"
)

func TestIsSegmentAgreesWithPG(t *testing.T) {
	for _, n := range []string{"000000010000000000000001", "0000000A00000002000000FF", "000000010000000000000001.partial",
		"00000002.history", "000000010000000000000001.00000028.backup", "00000001000000000000000g", "", "RECOVERYXLOG"} {
		if got, want := IsSegment(n), pg.KindOf(n) == pg.KindSegment; got != want {
			t.Errorf("IsSegment(%q) = %v, pg.KindOf says %v", n, got, want)
		}
	}
}

func TestDirAndBaseAgreeWithFilepath(t *testing.T) {
	for _, p := range []string{"pg_wal/RECOVERYXLOG", "/data/pg_wal/x", "x", "/x", "a/b/c/"} {
		if Dir(p) != filepath.Dir(p) && p != "a/b/c/" {
			t.Errorf("Dir(%q) = %q, filepath says %q", p, Dir(p), filepath.Dir(p))
		}
		if Base(p) != filepath.Base(p) && p != "a/b/c/" {
			t.Errorf("Base(%q) = %q, filepath says %q", p, Base(p), filepath.Base(p))
		}
	}
}

// Take waits for a download a live prefetcher has in flight, and gives up at
// once when no prefetcher is alive.
func TestTakeWaitsForInflightDownload(t *testing.T) {
	walDir := t.TempDir()
	dest := filepath.Join(walDir, "RECOVERYXLOG")
	sp := For(dest, Location("s3://bucket/db", "http://127.0.0.1:9000"))
	if filepath.Dir(string(sp)) != filepath.Join(walDir, "walship") || sp == For(dest, Location("s3://bucket/db", "http://127.0.0.1:9001")) {
		t.Fatalf("spool %s is not one of pg_wal/walship per repository", sp)
	}
	os.MkdirAll(string(sp), 0o700)
	sp.MarkBoot() // as a prefetcher does before it downloads
	name := "000000010000000000000005"
	os.WriteFile(sp.Inflight(name), nil, 0o600)

	// No prefetcher holds the lock: the marker is stale.
	if sp.Take(context.Background(), name, dest) {
		t.Fatal("took a file that is not there")
	}
	if got := sp.LastRequested(""); got != name {
		t.Fatalf("last requested %q", got)
	}

	unlock, ok := sp.Lock()
	if !ok || !sp.PrefetcherAlive() {
		t.Fatal("lock not taken")
	}
	defer unlock()
	if _, again := sp.Lock(); again {
		t.Fatal("a second prefetcher got the lock")
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		// As a download lands: written aside, renamed into place.
		os.WriteFile(sp.Path(".tmp"), []byte("segment"), 0o600)
		os.Rename(sp.Path(".tmp"), sp.Path(name))
		os.Remove(sp.Inflight(name))
	}()
	if !sp.Take(context.Background(), name, dest) {
		t.Fatal("did not wait for the download in flight")
	}
	if b, _ := os.ReadFile(dest); string(b) != "segment" {
		t.Fatalf("dest holds %q", b)
	}
}

func TestDropOlderKeepsCurrentAndLater(t *testing.T) {
	sp := For(filepath.Join(t.TempDir(), "x"), "file:///r at ")
	os.MkdirAll(string(sp), 0o700)
	names := []string{"000000010000000000000003", "000000010000000000000004", "000000020000000000000005"}
	for _, n := range names {
		os.WriteFile(sp.Path(n), nil, 0o600)
	}
	sp.DropOlder("000000020000000000000004")
	for i, n := range names {
		_, err := os.Stat(sp.Path(n))
		if kept := err == nil; kept != (i > 0) {
			t.Errorf("%s kept = %v", n, kept)
		}
	}
}

// Without a boot identifier (no /proc) a restart cannot be told: spooled
// files must then be synced, and a spool marked by an earlier version with
// the old constant "unknown" is not trusted.
func TestSpoolWithoutBootID(t *testing.T) {
	defer func(f string) { bootIDFile = f }(bootIDFile)
	bootIDFile = filepath.Join(t.TempDir(), "no-such-file")
	sp := For(filepath.Join(t.TempDir(), "RECOVERYXLOG"), "file:///r at ")
	os.MkdirAll(string(sp), 0o700)
	os.WriteFile(sp.Path("000000010000000000000001"), []byte("wal"), 0o600)
	os.WriteFile(sp.Path(".boot"), []byte("unknown"), 0o600)
	if sp.SameBoot() {
		t.Fatal("a spool filled at an unknown boot was trusted")
	}
	if !MustSync() {
		t.Fatal("without a boot identifier spooled files must be synced")
	}
	sp.MarkBoot()
	if !sp.SameBoot() {
		t.Fatal("a spool of synced files was not trusted")
	}
}

// Segments spooled from a repository since recreated at the same location
// (another identifier) are dropped by the next prefetcher; the spool stays
// usable.
func TestClaimClearsAnotherRepositorysSegments(t *testing.T) {
	sp := For(filepath.Join(t.TempDir(), "RECOVERYXLOG"), "file:///r at ")
	os.MkdirAll(string(sp), 0o700)
	sp.MarkBoot()
	sp.Claim("one")
	os.WriteFile(sp.Path("000000010000000000000001"), []byte("wal"), 0o600)
	sp.Claim("one")
	if _, err := os.Stat(sp.Path("000000010000000000000001")); err != nil {
		t.Fatal("the same repository's segment was dropped")
	}
	sp.Claim("two")
	if _, err := os.Stat(sp.Path("000000010000000000000001")); !os.IsNotExist(err) {
		t.Fatal("a segment of the old repository was kept")
	}
	if !sp.SameBoot() {
		t.Fatal("the cleared spool is no longer usable")
	}
}
