package restore

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
	"github.com/walship/walship/internal/storage/storagetest"
)

// problems runs Verify and returns its problems as "kind: name" strings.
func problems(t *testing.T, st storage.Store, o VerifyOptions) []string {
	t.Helper()
	o.Jobs = 3
	rep, err := Verify(context.Background(), st, &codec.Decoder{}, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range rep.Backups {
		for _, p := range b.Problems {
			out = append(out, p.Kind+": "+p.Name)
		}
	}
	if rep.OK != (len(out) == 0) {
		t.Errorf("OK = %v with problems %v", rep.OK, out)
	}
	return out
}

func putWAL(t *testing.T, st storage.Store, name string, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	h := codec.Header{Name: name, Size: int64(len(data)), Checksum: codec.Checksum(data)}
	if err := (&codec.Encoder{}).Encode(&buf, h, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	key, _ := catalog.WALKey(name)
	if err := st.Put(context.Background(), key, buf.Bytes(), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func seg(tli pg.Timeline, n uint32) string { return pg.Segment{Timeline: tli, Seg: n}.Name() }

func TestVerifyGoodBackup(t *testing.T) {
	st, _, _ := setup(t, 3)
	for _, id := range []string{"", "latest"} {
		if _, err := Verify(context.Background(), st, &codec.Decoder{}, VerifyOptions{Backup: id}); err == nil ||
			!strings.Contains(err.Error(), "no complete backup in") {
			t.Errorf("verify %q without any backup: %v", id, err)
		}
	}
	m := storeBackup(t, st, "20261125T100000Z", testEntries("/nowhere"), "", 100)
	rep, err := Verify(context.Background(), st, &codec.Decoder{}, VerifyOptions{Backup: "latest", Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Backups) != 1 {
		t.Fatalf("report %+v; want one backup, no problem", rep)
	}
	c := rep.Backups[0]
	files := 0
	for _, f := range m.Files {
		if f.Type == catalog.TypeFile {
			files++
		}
	}
	if c.Objects != len(m.Objects) || c.Files != files || c.WALFrom != seg(1, 1) || c.WALTo != seg(1, 1) || c.Segments != 1 {
		t.Errorf("check %+v; want %d objects, %d files, WAL %s only", c, len(m.Objects), files, seg(1, 1))
	}
	// To the latest: segments 1..3.
	rep, _ = Verify(context.Background(), st, &codec.Decoder{}, VerifyOptions{ToLatest: true})
	if c := rep.Backups[0]; !rep.OK || c.WALTo != seg(1, 3) || c.Segments != 3 {
		t.Errorf("--to-latest: %+v; want WAL to %s, 3 segments", c, seg(1, 3))
	}
	if _, err := Verify(context.Background(), st, &codec.Decoder{}, VerifyOptions{Backup: "20200101T000000Z"}); err == nil ||
		!strings.Contains(err.Error(), "no complete backup 20200101T000000Z") {
		t.Errorf("unknown backup: %v", err)
	}
}

func TestVerifyNamesEachProblem(t *testing.T) {
	st, _, _ := setup(t, 5)
	ctx := context.Background()
	m := storeBackup(t, st, "20261125T100000Z", testEntries("/nowhere"), "", 100)
	// The backup needs segments 1..4; 2 is missing.
	m.StopWAL, m.StopLSN = seg(1, 4), "0/480000"
	st.Delete(ctx, catalog.ManifestKey(m.ID))
	key2, _ := catalog.WALKey(seg(1, 2))
	st.Delete(ctx, key2)
	// A file whose checksum differs from its bytes.
	for i, f := range m.Files {
		if f.Path == "PG_VERSION" {
			m.Files[i].Checksum = strings.Repeat("0", 32)
		}
	}
	if err := catalog.PutManifest(ctx, st, &codec.Encoder{}, m); err != nil {
		t.Fatal(err)
	}
	// Object 1 corrupt, object 3 missing.
	rc, _ := st.Get(ctx, m.Objects[1].Key)
	var raw bytes.Buffer
	raw.ReadFrom(rc)
	rc.Close()
	bad := raw.Bytes()
	bad[len(bad)-3] ^= 0xff
	st.Put(ctx, m.Objects[1].Key, bad, storage.PutOptions{})
	st.Delete(ctx, m.Objects[3].Key)

	got := strings.Join(problems(t, st, VerifyOptions{}), "\n")
	want := strings.Join([]string{
		"file checksum mismatch: PG_VERSION",
		"corrupt object: " + m.Objects[1].Key,
		"missing object: " + m.Objects[3].Key,
		"missing WAL segment: " + seg(1, 2),
	}, "\n")
	if got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}

	// A second backup whose manifest was damaged in the store: named, and
	// the first backup is still checked.
	m2 := storeBackup(t, st, "20261125T110000Z", testEntries("/nowhere"), "", 100)
	rc, _ = st.Get(ctx, catalog.ManifestKey(m2.ID))
	raw.Reset()
	raw.ReadFrom(rc)
	rc.Close()
	bad = raw.Bytes()
	bad[len(bad)-3] ^= 0xff
	st.Put(ctx, catalog.ManifestKey(m2.ID), bad, storage.PutOptions{})
	got = strings.Join(problems(t, st, VerifyOptions{}), "\n")
	if want := want + "\nbad manifest: " + catalog.ManifestKey(m2.ID); got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}
}

func TestVerifyWALAcrossTimelines(t *testing.T) {
	st, _, _ := setup(t, 6) // timeline 1: segments 1..6
	ctx := context.Background()
	storeBackup(t, st, "20261125T100000Z", testEntries("/nowhere"), "", 100)
	// Timeline 2 began at 0/380000 (in segment 3); timeline 3 at 0/600000.
	putWAL(t, st, "00000002.history", []byte("1\t0/380000\tno recovery target specified\n"))
	putWAL(t, st, "00000003.history", []byte("1\t0/380000\tx\n2\t0/600000\ty\n"))
	for _, s := range []string{seg(2, 3), seg(2, 4), seg(2, 5), seg(3, 6), seg(3, 7), seg(3, 9)} {
		putWAL(t, st, s, []byte(s))
	}
	// From segment 1 on timeline 1, 3..5 on timeline 2, 6.. on timeline 3:
	// 8 is missing. Timeline 1's segments 3..6 are not needed.
	got := strings.Join(problems(t, st, VerifyOptions{ToLatest: true}), "\n")
	if want := "missing WAL segment: " + seg(3, 8); got != want {
		t.Errorf("problems: %q, want %q", got, want)
	}
	for _, s := range []string{seg(2, 4), seg(2, 5)} {
		key, _ := catalog.WALKey(s)
		st.Delete(ctx, key)
	}
	key, _ := catalog.WALKey(seg(1, 2))
	st.Delete(ctx, key)
	got = strings.Join(problems(t, st, VerifyOptions{ToLatest: true}), "\n")
	want := "missing WAL segment: " + seg(1, 2) + "\nWAL gap: " + seg(2, 4) + ".." + seg(2, 5) + "\nmissing WAL segment: " + seg(3, 8)
	if got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}
}

// A download broken off midway is downloaded again, that object alone
// (objects are read whole before they are decoded); past the store's retry
// budget, verify fails with an error instead of reporting a problem.
func TestVerifyRetriesInterruptedDownloads(t *testing.T) {
	base, _, _ := setup(t, 3)
	m := storeBackup(t, base, "20261125T100000Z", testEntries("/nowhere"), "", 100)
	key := m.Objects[1].Key
	gets := brokenOff(key, m.Objects[1].StoredSize-5, 2)
	all := &storagetest.Rule{Op: storagetest.Get}
	st := storagetest.Wrap(base, gets, all)
	rep, err := Verify(context.Background(), st, &codec.Decoder{}, VerifyOptions{Jobs: 2})
	if err != nil || !rep.OK || gets.Calls() != 3 {
		t.Fatalf("two interrupted downloads: %+v, %v, %d gets; want OK after 3 gets", rep, err, gets.Calls())
	}
	for _, o := range m.Objects {
		if o.Key != key && all.Count(o.Key) != 1 {
			t.Errorf("%s downloaded %d times, want once", o.Key, all.Count(o.Key))
		}
	}
	st = storagetest.Wrap(base, brokenOff(key, 20, 0))
	_, err = Verify(context.Background(), st, &codec.Decoder{}, VerifyOptions{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("every download interrupted: %v", err)
	}
}

// Objects of one long chain (a file spanning all of them) download jobs at
// a time, never more, while they are decoded in order.
func TestVerifyLongChainDownloadsInParallel(t *testing.T) {
	base, _, _ := setup(t, 3)
	big := strings.Repeat("0123456789abcdef", 64) // 1 KiB: ten 100-byte objects
	m := storeBackup(t, base, "20261125T100000Z", []entry{{path: "base/1/big", typ: catalog.TypeFile, data: big, mode: 0o600}}, "", 100)
	if len(m.Objects) < 10 {
		t.Fatalf("%d objects, want 10 or more", len(m.Objects))
	}
	for _, jobs := range []int{1, 3} {
		// Gets of data objects, slowed down, to count how many run at once.
		gets := &storagetest.Rule{Op: storagetest.Get, Match: func(key string) bool { return strings.Contains(key, "/data/") }, Delay: 20 * time.Millisecond}
		rep, err := Verify(context.Background(), storagetest.Wrap(base, gets), &codec.Decoder{}, VerifyOptions{Jobs: jobs})
		if err != nil || !rep.OK {
			t.Fatalf("jobs %d: %+v, %v", jobs, rep, err)
		}
		if gets.Peak() != jobs || gets.Calls() != len(m.Objects) {
			t.Errorf("jobs %d: at most %d downloads at once (%d in all); want %d at once, %d in all", jobs, gets.Peak(), gets.Calls(), jobs, len(m.Objects))
		}
	}
}
