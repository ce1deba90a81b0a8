package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/pg"
)

// TestArchivePgbenchToMinIO archives more than 50 segments of pgbench WAL
// with archive_command = 'walship wal-push %p' into MinIO and checks, with
// minio-go rather than walship's own S3 code, that every segment is stored
// and decodes to exactly the bytes PostgreSQL wrote, that PostgreSQL saw no
// failure, and that the repository names the server's database system.
func TestArchivePgbenchToMinIO(t *testing.T) {
	const bucket, prefix = "archive", "cluster-a"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	srv := harness.NewPostgres(t, harness.PGOptions{
		Settings: archSettings(t, "wal_keep_size = '2GB'"),
		Env:      m.Env(bucket, prefix),
	})
	first := archCurrentSegment(t, srv)

	// Write WAL until at least 50 segments were completed: a large
	// initialisation, then transactions.
	start := time.Now()
	srv.Pgbench("-i", "-s", "60", "-q")
	t.Logf("after pgbench -i: %s at %s", archCurrentSegment(t, srv), time.Since(start).Round(time.Millisecond))
	for i := 0; i == 0 || archSegmentsSince(t, first, archCurrentSegment(t, srv), 16<<20) < 51; i++ {
		if i == 20 {
			t.Fatalf("pgbench wrote too little WAL: still at %s", archCurrentSegment(t, srv))
		}
		// A checkpoint before each run makes its first change of every
		// page a full-page image: much WAL for little work.
		srv.Psql("CHECKPOINT")
		srv.Pgbench("-T", "3", "-c", "2", "-j", "2")
		t.Logf("after pgbench -T: %s at %s", archCurrentSegment(t, srv), time.Since(start).Round(time.Millisecond))
	}
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, 3*time.Minute)
	segs := archSegmentRange(t, first, last, 16<<20)
	t.Logf("archived %d segments %s..%s at %s", len(segs), first, last, time.Since(start).Round(time.Millisecond))
	if len(segs) < 50 {
		t.Fatalf("only %d segments", len(segs))
	}

	// Every segment is in the bucket and holds exactly the bytes of pg_wal.
	for _, name := range segs {
		want := archReadWal(t, srv, name)
		got, ok := storedFile(t, m, bucket, prefix, name, nil)
		if !ok {
			t.Errorf("%s was archived by PostgreSQL but is not in s3://%s/%s", name, bucket, prefix)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: stored object decodes to %d bytes that differ from the %d bytes in pg_wal", name, len(got), len(want))
		}
	}
	// Nothing but the identity and well-formed WAL keys in the repository.
	keys := m.ListObjects(t, bucket, prefix+"/")
	for _, k := range keys {
		rel := strings.TrimPrefix(k, prefix+"/")
		if rel == catalog.IdentityKey {
			continue
		}
		name := filepath.Base(rel)
		if want, err := catalog.WALKey(name); err != nil || want != rel {
			t.Errorf("unexpected object %s in the repository", k)
		}
	}
	if len(keys) < len(segs)+1 {
		t.Errorf("bucket holds %d objects, want at least %d segments and walship.json", len(keys), len(segs))
	}

	t.Logf("compared at %s", time.Since(start).Round(time.Millisecond))
	if archived, failed, _ := archArchiverStats(t, srv); failed != 0 || archived < len(segs) {
		t.Errorf("pg_stat_archiver: archived_count %d, failed_count %d; want >= %d and 0", archived, failed, len(segs))
	}

	id := archIdentity(t, m, bucket, prefix)
	sys := srv.Psql("SELECT system_identifier FROM pg_control_system()")
	if strconv.FormatUint(id.SystemID, 10) != sys {
		t.Errorf("walship.json names database system %d, the server is %s", id.SystemID, sys)
	}
	if id.WALSegmentSize != 16<<20 {
		t.Errorf("walship.json records wal_segment_size %d, want %d", id.WALSegmentSize, 16<<20)
	}
}

// archSettings is the archiving configuration of a server that runs
// walship wal-push, plus extra lines.
func archSettings(t *testing.T, extra ...string) []string {
	t.Helper()
	return append([]string{
		"archive_mode = on",
		"archive_command = '" + harness.Walship(t) + " wal-push %p'",
	}, extra...)
}

// archCurrentSegment is the WAL segment the server writes into now.
func archCurrentSegment(t *testing.T, srv *harness.Postgres) string {
	t.Helper()
	return srv.Psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
}

// archSegmentRange lists the segments from first to last inclusive.
func archSegmentRange(t *testing.T, first, last string, segSize uint32) []string {
	t.Helper()
	s, err := pg.ParseSegmentName(first)
	if err != nil {
		t.Fatal(err)
	}
	if first[:8] != last[:8] || first > last {
		t.Fatalf("bad segment range %s..%s", first, last)
	}
	var names []string
	for {
		names = append(names, s.Name())
		if s.Name() == last {
			return names
		}
		if len(names) > 100000 {
			t.Fatalf("segment range %s..%s does not end", first, last)
		}
		s = s.Next(segSize)
	}
}

// archSegmentsSince counts the segments from first up to, not including, cur.
func archSegmentsSince(t *testing.T, first, cur string, segSize uint32) int {
	t.Helper()
	return len(archSegmentRange(t, first, cur, segSize)) - 1
}

// archReadWal reads a file from the server's pg_wal (as root, or as the same
// user when the tests do not run as root).
func archReadWal(t *testing.T, srv *harness.Postgres, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(srv.DataDir, "pg_wal", name))
	if err != nil {
		t.Fatalf("reading pg_wal/%s: %v", name, err)
	}
	return data
}

// archArchiverStats reads pg_stat_archiver.
func archArchiverStats(t *testing.T, srv *harness.Postgres) (archived, failed int, lastArchived string) {
	t.Helper()
	out := srv.Psql("SELECT archived_count || '|' || failed_count || '|' || coalesce(last_archived_wal, '') FROM pg_stat_archiver")
	f := strings.Split(out, "|")
	if len(f) != 3 {
		t.Fatalf("pg_stat_archiver: %q", out)
	}
	archived, _ = strconv.Atoi(f[0])
	failed, _ = strconv.Atoi(f[1])
	return archived, failed, f[2]
}

// archWALObjectKey is the bucket key of a WAL file under prefix.
func archWALObjectKey(t *testing.T, prefix, name string) string {
	t.Helper()
	key, err := catalog.WALKey(name)
	if err != nil {
		t.Fatal(err)
	}
	if prefix != "" {
		key = prefix + "/" + key
	}
	return key
}

// archIdentity reads and parses the repository's walship.json.
func archIdentity(t *testing.T, m *harness.MinIO, bucket, prefix string) catalog.Identity {
	t.Helper()
	key := catalog.IdentityKey
	if prefix != "" {
		key = prefix + "/" + key
	}
	raw, ok := rawObject(t, m, bucket, key)
	if !ok {
		t.Fatalf("no %s in bucket %s", key, bucket)
	}
	var id catalog.Identity
	if err := json.Unmarshal(raw, &id); err != nil {
		t.Fatalf("%s: %v\n%s", key, err, raw)
	}
	return id
}

// archWaitFor polls cond every 200ms until it holds, failing after timeout.
func archWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// archPgbenchCmd prepares pgbench against srv, run as the server user, for
// running in the background (harness.Postgres.Pgbench blocks and may only
// be called from the test goroutine).
func archPgbenchCmd(t *testing.T, srv *harness.Postgres, args ...string) *exec.Cmd {
	t.Helper()
	full := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(srv.Port), "-U", srv.User}, args...)
	cmd := exec.Command(filepath.Join(srv.BinDir, "pgbench"), full...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGDATABASE=postgres", "PGCONNECT_TIMEOUT=10", "HOME=/"}
	return harness.AsServerUser(t, cmd)
}

// archRestoredFromLog returns the set of files the server's log says it
// restored from the archive ("restored log file "X" from archive").
func archRestoredFromLog(t *testing.T, srv *harness.Postgres) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(srv.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	restored := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		_, rest, ok := strings.Cut(line, `restored log file "`)
		if !ok {
			continue
		}
		if name, _, ok := strings.Cut(rest, `"`); ok {
			restored[name] = true
		}
	}
	return restored
}

// archBackupStartSegment reads the segment a base backup starts in from its
// backup_label.
func archBackupStartSegment(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "backup_label"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if _, rest, ok := strings.Cut(line, "START WAL LOCATION:"); ok {
			if _, file, ok := strings.Cut(rest, "(file "); ok {
				return strings.TrimSuffix(strings.TrimSpace(file), ")")
			}
		}
	}
	t.Fatalf("no START WAL LOCATION in backup_label:\n%s", data)
	return ""
}

// archTableDigest is an exact fingerprint of the pgbench tables (and of
// table extra, when given).
func archTableDigest(t *testing.T, srv *harness.Postgres, extra ...string) string {
	t.Helper()
	q := "SELECT (SELECT md5(string_agg(aid || ':' || abalance, ',' ORDER BY aid)) FROM pgbench_accounts)" +
		" || ' ' || (SELECT count(*) FROM pgbench_history)" +
		" || ' ' || (SELECT coalesce(sum(delta), 0) FROM pgbench_history)" +
		" || ' ' || (SELECT md5(string_agg(bid || ':' || bbalance, ',' ORDER BY bid)) FROM pgbench_branches)"
	for _, tbl := range extra {
		q += fmt.Sprintf(" || ' ' || (SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM %s t)", tbl)
	}
	return srv.Psql(q)
}

// TestArchiveToTwoRepositories archives every segment into two repositories,
// as a second region's copy would be kept:
//
//	archive_command = 'walship wal-push %p && WALSHIP_REPO=s3://other walship wal-push %p'
//
// PostgreSQL is told a segment is archived only when both calls exit 0, so
// both repositories must hold every segment.
func TestArchiveToTwoRepositories(t *testing.T) {
	const bucket = "two"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	bin := harness.Walship(t)
	srv := harness.NewPostgres(t, harness.PGOptions{
		Settings: []string{
			"archive_mode = on",
			"archive_command = '" + bin + " wal-push %p && WALSHIP_REPO=s3://" + bucket + "/second " + bin + " wal-push %p'",
			"wal_keep_size = '1GB'",
		},
		Env: m.Env(bucket, "first"),
	})
	first := archCurrentSegment(t, srv)
	srv.ExecAll("CREATE TABLE t (i int)")
	var last string
	for i := 0; i < 4; i++ {
		srv.Psql("INSERT INTO t SELECT generate_series(1, 10000)")
		last = srv.SwitchWal()
	}
	srv.WaitArchived(t, last, 2*time.Minute)
	for _, prefix := range []string{"first", "second"} {
		for _, name := range archSegmentRange(t, first, last, 16<<20) {
			got, ok := storedFile(t, m, bucket, prefix, name, nil)
			if !ok {
				t.Errorf("%s was acknowledged to PostgreSQL but is not in s3://%s/%s", name, bucket, prefix)
			} else if !bytes.Equal(got, archReadWal(t, srv, name)) {
				t.Errorf("%s in s3://%s/%s differs from pg_wal", name, bucket, prefix)
			}
		}
	}
}
