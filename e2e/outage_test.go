package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/codec"
)

// TestMinIOOutageDuringPgbench kills MinIO while pgbench writes and checks
// that walship never acknowledges a segment that is not stored, that
// PostgreSQL sees the failures, and that archiving catches up without a gap
// once MinIO is back.
func TestMinIOOutageDuringPgbench(t *testing.T) {
	const bucket, prefix = "outage", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := append(m.Env(bucket, prefix), "WALSHIP_RETRY_BUDGET=3s", "WALSHIP_TIMEOUT=10s")
	srv := harness.NewPostgres(t, harness.PGOptions{
		Settings: archSettings(t, "wal_keep_size = '2GB'"),
		Env:      env,
	})
	first := archCurrentSegment(t, srv)
	srv.Pgbench("-i", "-s", "5", "-q")
	srv.Psql("CHECKPOINT")

	bench := archPgbenchCmd(t, srv, "-T", "25", "-c", "2", "-j", "2")
	var benchOut bytes.Buffer
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()
	t.Cleanup(func() { bench.Process.Kill(); <-benchDone })

	// Archiving works before the outage.
	archWaitFor(t, time.Minute, "a segment archived before the outage", func() bool {
		archived, _, _ := archArchiverStats(t, srv)
		return archived > 0
	})
	m.Stop()
	outage := time.Now()
	archWaitFor(t, 90*time.Second, "pg_stat_archiver.failed_count > 0 while MinIO is down", func() bool {
		_, failed, _ := archArchiverStats(t, srv)
		return failed > 0
	})
	t.Logf("first archive failure %s after MinIO stopped", time.Since(outage).Round(time.Millisecond))
	// Stay down while segments pile up and PostgreSQL retries.
	archWaitFor(t, 60*time.Second, "a backlog of 2 segments and 2 failures while MinIO is down", func() bool {
		ready, _ := filepath.Glob(filepath.Join(srv.DataDir, "pg_wal", "archive_status", "*.ready"))
		_, failed, _ := archArchiverStats(t, srv)
		return len(ready) >= 2 && failed >= 2
	})
	// What PostgreSQL was told is safe while the store is unreachable.
	done := archDoneSegments(t, srv)
	_, failed, lastArchived := archArchiverStats(t, srv)
	t.Logf("after %s of outage: %d segments acknowledged (last %s), failed_count %d", time.Since(outage).Round(time.Millisecond), len(done), lastArchived, failed)

	// The failure reached the server log with walship's reason.
	if log, _ := os.ReadFile(srv.LogPath); !bytes.Contains(log, []byte("walship: ")) ||
		!bytes.Contains(log, []byte(strings.TrimPrefix(m.Endpoint, "http://"))) {
		t.Error("the server log has no walship error naming the unreachable endpoint")
	}
	m.Start()
	for _, name := range done {
		got, ok := storedFile(t, m, bucket, prefix, name, nil)
		if !ok {
			t.Errorf("%s was acknowledged to PostgreSQL (.done) but is not in the bucket", name)
			continue
		}
		if !bytes.Equal(got, archReadWal(t, srv, name)) {
			t.Errorf("%s was acknowledged, but the stored object differs from pg_wal", name)
		}
	}

	select {
	case err := <-benchDone:
		benchDone <- err
		if err != nil {
			t.Fatalf("pgbench: %v\n%s", err, benchOut.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("pgbench -T 25 did not end")
	}
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, 3*time.Minute)
	segs := archSegmentRange(t, first, last, 16<<20)
	t.Logf("caught up: %d segments %s..%s archived", len(segs), first, last)
	if len(segs) < len(done)+2 {
		t.Errorf("only %d segments in all, %d of them before the outage: the outage did not interrupt archiving", len(segs), len(done))
	}
	for _, name := range segs {
		got, ok := storedFile(t, m, bucket, prefix, name, nil)
		if !ok {
			t.Errorf("gap: %s is not in the bucket", name)
			continue
		}
		if !bytes.Equal(got, archReadWal(t, srv, name)) {
			t.Errorf("%s: stored object differs from pg_wal", name)
		}
	}
	if _, failed, _ := archArchiverStats(t, srv); failed == 0 {
		t.Error("failed_count is 0 after the outage")
	}
	// Every segment is marked done (none is left .ready).
	ready, _ := filepath.Glob(filepath.Join(srv.DataDir, "pg_wal", "archive_status", "*.ready"))
	if len(ready) > 0 {
		t.Errorf("still ready for archiving after catching up: %v", ready)
	}
}

// archDoneSegments lists the WAL segments PostgreSQL has marked archived
// (pg_wal/archive_status/*.done).
func archDoneSegments(t *testing.T, srv *harness.Postgres) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(srv.DataDir, "pg_wal", "archive_status"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".done"); ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// TestWalPushKilledMidUpload kills wal-push with SIGKILL during uploads and
// checks that a half-written object is never visible (the object is either
// absent or complete and decodes to the segment) and that running wal-push
// again succeeds.
func TestWalPushKilledMidUpload(t *testing.T) {
	const bucket, prefix = "killed", "x"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)

	// Real segments, copied into a pg_wal of their own.
	src := harness.NewPostgres(t, harness.PGOptions{})
	src.ExecAll("CREATE TABLE t (i int, s text)")
	var segs []string
	for i := 0; i < 10; i++ {
		src.Psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
		segs = append(segs, src.SwitchWal())
	}
	walDir := filepath.Join(harness.NewServerDir(t), "pg_wal")
	if err := os.Mkdir(walDir, 0o700); err != nil {
		t.Fatal(err)
	}
	harness.GiveToServer(t, walDir)
	wal := map[string][]byte{}
	for _, name := range segs {
		wal[name] = archReadWal(t, src, name)
		p := filepath.Join(walDir, name)
		if err := os.WriteFile(p, wal[name], 0o600); err != nil {
			t.Fatal(err)
		}
		harness.GiveToServer(t, p)
	}
	src.Stop()
	// Uncompressed, so an upload is 16 MiB and takes a while.
	env := append(m.Env(bucket, prefix), "WALSHIP_COMPRESSION=none", "WALSHIP_RETRY_BUDGET=60s", "WALSHIP_TIMEOUT=20s")
	dir := filepath.Dir(walDir)

	// checkAbsentOrComplete reads the object directly: it must not exist,
	// or decode to exactly the segment.
	checkAbsentOrComplete := func(name string) bool {
		raw, ok := rawObject(t, m, bucket, archWALObjectKey(t, prefix, name))
		if !ok {
			return false
		}
		var got bytes.Buffer
		if _, err := (&codec.Decoder{}).Decode(bytes.NewReader(raw), &got, name); err != nil {
			t.Errorf("%s: a killed wal-push left an object of %d bytes that does not decode: %v", name, len(raw), err)
		} else if !bytes.Equal(got.Bytes(), wal[name]) {
			t.Errorf("%s: a killed wal-push left an object that decodes to other bytes", name)
		}
		return true
	}
	pushAgain := func(name string) time.Duration {
		start := time.Now()
		res := runWalship(t, dir, env, "wal-push", "pg_wal/"+name)
		took := time.Since(start)
		if res.code != 0 {
			t.Fatalf("wal-push %s after the kill: exit %d: %s", name, res.code, res.stderr)
		}
		got, ok := storedFile(t, m, bucket, prefix, name, nil)
		if !ok || !bytes.Equal(got, wal[name]) {
			t.Fatalf("%s after a successful wal-push: stored %v, or differs from the segment", name, ok)
		}
		return took
	}

	// 1. The store is down: wal-push hangs retrying and is killed.
	m.Stop()
	cmd := archStartWalPush(t, dir, env, "pg_wal/"+segs[0])
	time.Sleep(1500 * time.Millisecond)
	if err := archKillWait(cmd); err == nil {
		t.Fatalf("wal-push succeeded while MinIO was down")
	}
	m.Start()
	if checkAbsentOrComplete(segs[0]) {
		t.Errorf("%s is in the bucket though wal-push never reached MinIO", segs[0])
	}
	pushAgain(segs[0])
	// A normal push (the repository's identity is known by now) sets the
	// time scale for the kills.
	full := pushAgain(segs[1])
	t.Logf("a whole wal-push of %s took %s", segs[1], full)

	// 2. The store is up: kill at moments spread over a whole push (before,
	// during and after the upload).
	fractions := []float64{0.3, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.05}
	for i, name := range segs[2:] {
		d := time.Duration(fractions[i%len(fractions)] * float64(full))
		cmd := archStartWalPush(t, dir, env, "pg_wal/"+name)
		time.Sleep(d)
		finished := archKillWait(cmd) == nil
		present := checkAbsentOrComplete(name)
		t.Logf("%s killed after %s: exited by itself %v, object present %v", name, d, finished, present)
		pushAgain(name)
	}
	// A killed wal-push leaves no stray objects: only the identity and the
	// segments.
	keys := m.ListObjects(t, bucket, prefix+"/")
	if len(keys) != len(segs)+1 {
		t.Errorf("bucket holds %d objects, want %d segments and walship.json: %v", len(keys), len(segs), keys)
	}
	// No incomplete multipart upload is left behind either.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for u := range m.Client.ListIncompleteUploads(ctx, bucket, prefix+"/", true) {
		if u.Err != nil {
			if minio.ToErrorResponse(u.Err).Code != "NotImplemented" {
				t.Errorf("listing incomplete uploads: %v", u.Err)
			}
			break
		}
		t.Errorf("incomplete upload left behind: %s", u.Key)
	}
}

// archStartWalPush starts wal-push as the server user in dir.
func archStartWalPush(t *testing.T, dir string, env []string, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(harness.Walship(t), "wal-push", path)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	harness.AsServerUser(t, cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// archKillWait sends SIGKILL and waits. It returns nil when the process had
// already exited 0 by itself.
func archKillWait(cmd *exec.Cmd) error {
	cmd.Process.Signal(syscall.SIGKILL)
	return cmd.Wait()
}
