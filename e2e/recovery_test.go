package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
)

// TestRecoverFromArchive recovers a second server from a base backup taken
// while pgbench was writing, with restore_command = 'walship wal-fetch %f %p'
// and nothing but MinIO as the source of WAL, and checks that it holds
// exactly what the primary held.
func TestRecoverFromArchive(t *testing.T) {
	const bucket, prefix = "recover", "main"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	srv.Pgbench("-i", "-s", "5", "-q")

	// A base backup in the middle of a workload.
	bench := archPgbenchCmd(t, srv, "-T", "8", "-c", "2", "-j", "2")
	var benchOut bytes.Buffer
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()
	t.Cleanup(func() { bench.Process.Kill(); <-benchDone })
	time.Sleep(2 * time.Second)
	select {
	case err := <-benchDone:
		benchDone <- err
		t.Fatalf("pgbench ended before the base backup began: %v\n%s", err, benchOut.String())
	default:
	}
	backup := srv.BaseBackup(t)
	select {
	case err := <-benchDone:
		benchDone <- err
		if err != nil {
			t.Fatalf("pgbench: %v\n%s", err, benchOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("pgbench -T 8 did not end within a minute")
	}
	// Keep writing after the backup.
	srv.Pgbench("-T", "3", "-c", "2", "-j", "2")
	want := archTableDigest(t, srv)
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, 2*time.Minute)
	srv.Stop()
	startSeg := archBackupStartSegment(t, backup) // recovery renames backup_label

	start := time.Now()
	restored := archRecoverFrom(t, backup, env)
	restored.WaitRecovered(t, 2*time.Minute)
	t.Logf("recovered %s..%s in %s", startSeg, last, time.Since(start).Round(time.Millisecond))

	if got := archTableDigest(t, restored); got != want {
		t.Errorf("restored content differs from the primary's:\n got %s\nwant %s", got, want)
	}
	if tli := restored.Psql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"); tli != "00000002" {
		t.Errorf("restored server writes on timeline %s, want 00000002 after promotion", tli)
	}
	log, _ := os.ReadFile(restored.LogPath)
	if !bytes.Contains(log, []byte("selected new timeline ID: 2")) {
		t.Error("the restored server's log does not show the switch to timeline 2")
	}
	// Every segment the recovery needed came from the archive.
	restoredFiles := archRestoredFromLog(t, restored)
	for _, name := range archSegmentRange(t, startSeg, last, 16<<20) {
		if !restoredFiles[name] {
			t.Errorf("the restored server's log shows no %q restored from the archive", name)
		}
	}
	// The prefetcher ran: its spool and its lock exist.
	spool := spoolDir(restored.DataDir, env)
	for _, p := range []string{spool, filepath.Join(spool, ".lock")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("prefetch did not run: %v", err)
		}
	}
}

// TestRecoverWithAgentEncryptionAndSmallSegments archives a server with 1 MiB
// WAL segments through `walship agent`, encrypted with age and compressed
// with s2, then recovers a second server from it.
func TestRecoverWithAgentEncryptionAndSmallSegments(t *testing.T) {
	const bucket, prefix = "agent", "enc"
	const segSize = 1 << 20
	const canary = "walship-plaintext-canary-"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(harness.NewServerDir(t), "walship.agekey")
	if err := os.WriteFile(keyFile, []byte(identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.GiveToServer(t, keyFile)
	env := append(m.Env(bucket, prefix), "WALSHIP_ENCRYPTION_KEY_FILE="+keyFile, "WALSHIP_COMPRESSION=s2")

	srv := harness.NewPostgres(t, harness.PGOptions{
		InitdbArgs: []string{"--wal-segsize=1"},
		Settings:   archSettings(t, "wal_keep_size = '1GB'"),
		Env:        env,
		NoStart:    true,
	})
	agentLog := archStartAgent(t, srv, env)
	srv.Start()
	began := time.Now()
	first := archCurrentSegment(t, srv)
	if got := srv.Psql("SHOW wal_segment_size"); got != "1MB" {
		t.Fatalf("wal_segment_size = %s, want 1MB", got)
	}

	srv.ExecAll(
		"CREATE TABLE secret (id int PRIMARY KEY, note text NOT NULL)",
		"INSERT INTO secret SELECT i, '"+canary+"' || i FROM generate_series(1, 20000) i",
	)
	srv.Pgbench("-i", "-s", "2", "-q")
	// The base backup starts shortly before segment ...FF, so that the
	// recovery crosses ...FF -> ...100 (which a prefetcher counting in 16 MiB
	// segments would get wrong) without replaying all 300 segments.
	archWriteUntil(t, srv, "0000000100000000000000F4")
	backup := srv.BaseBackup(t)
	t.Logf("base backup at %s after %s", archCurrentSegment(t, srv), time.Since(began).Round(time.Millisecond))
	srv.ExecAll(
		"INSERT INTO secret SELECT i, '"+canary+"' || i FROM generate_series(20001, 60000) i",
		"UPDATE secret SET note = note || '-updated' WHERE id % 7 = 0",
	)
	archWriteUntil(t, srv, "000000010000000000000138")
	srv.Pgbench("-T", "2", "-c", "2", "-j", "2")
	want := archTableDigest(t, srv, "secret")
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, 3*time.Minute)
	segs := archSegmentRange(t, first, last, segSize)
	t.Logf("archived %d segments %s..%s after %s", len(segs), first, last, time.Since(began).Round(time.Millisecond))
	if len(segs) <= 300 {
		t.Fatalf("only %d segments; the test wants more than 300", len(segs))
	}
	if archived, failed, _ := archArchiverStats(t, srv); failed != 0 || archived < len(segs) {
		t.Errorf("pg_stat_archiver: archived_count %d, failed_count %d; want >= %d and 0", archived, failed, len(segs))
	}
	if log, _ := os.ReadFile(agentLog); !bytes.Contains(log, []byte("msg=archived")) {
		t.Errorf("the agent's log shows no file it archived:\n%s", log)
	}
	if id := archIdentity(t, m, bucket, prefix); id.WALSegmentSize != segSize {
		t.Errorf("walship.json records wal_segment_size %d, want %d", id.WALSegmentSize, segSize)
	}

	// wal-push of an archived segment is answered through the agent, at once.
	pushStart := time.Now()
	res := runWalship(t, srv.DataDir, env, "wal-push", "pg_wal/"+segs[len(segs)/2])
	pushTook := time.Since(pushStart)
	if res.code != 0 {
		t.Errorf("wal-push of an archived segment beside the agent: exit %d: %s", res.code, res.stderr)
	}
	pushStart = time.Now()
	res = runWalship(t, srv.DataDir, append(env, "WALSHIP_NO_AGENT=true"), "wal-push", "pg_wal/"+segs[len(segs)/2])
	t.Logf("wal-push of an archived segment took %s with the agent running, %s without asking it (exit %d)",
		pushTook.Round(time.Microsecond), time.Since(pushStart).Round(time.Microsecond), res.code)

	// Every segment is stored encrypted: no plain text, age in the header,
	// unreadable without the key, exactly the pg_wal bytes with it.
	dec := &codec.Decoder{Identities: []age.Identity{identity}}
	withCanary := 0
	for _, name := range segs {
		plain := archReadWal(t, srv, name)
		raw, ok := rawObject(t, m, bucket, archWALObjectKey(t, prefix, name))
		if !ok {
			t.Errorf("%s is not in the bucket", name)
			continue
		}
		if bytes.Contains(plain, []byte(canary)) {
			withCanary++
			if bytes.Contains(raw, []byte(canary)) {
				t.Errorf("%s: the stored object contains the plain text %q", name, canary)
			}
		}
		h, err := codec.ReadHeader(bytes.NewReader(raw))
		if err != nil || h.Encryption != "age" || h.Compression != "s2" {
			t.Errorf("%s: header %+v (%v), want age encryption and s2 compression", name, h, err)
		}
		if _, err := (&codec.Decoder{}).Decode(bytes.NewReader(raw), &bytes.Buffer{}, name); !errors.Is(err, codec.ErrNoKey) {
			t.Errorf("%s decodes without the key: %v", name, err)
		}
		var got bytes.Buffer
		if _, err := dec.Decode(bytes.NewReader(raw), &got, name); err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !bytes.Equal(got.Bytes(), plain) {
			t.Errorf("%s decodes to bytes that differ from pg_wal", name)
		}
	}
	if withCanary == 0 {
		t.Fatalf("no segment in pg_wal contains %q: the encryption check checked nothing", canary)
	}
	t.Logf("%d segments hold the plain text in pg_wal, none in the bucket (%s)", withCanary, time.Since(began).Round(time.Millisecond))

	// The prefetcher counts segments in the repository's segment size: after
	// ...FE come ...FF, ...100 and so on (with 16 MiB it would jump to the
	// next log id after ...FF).
	archCheckPrefetchOrder(t, env, srv, segs, segSize, pg.Segment{Timeline: 1, LogID: 0, Seg: 0xFE}, 8)

	t.Logf("prefetch checked after %s", time.Since(began).Round(time.Millisecond))
	srv.Stop()
	startSeg := archBackupStartSegment(t, backup)
	start := time.Now()
	restored := archRecoverFrom(t, backup, env)
	restored.WaitRecovered(t, 3*time.Minute)
	replayed := archSegmentRange(t, startSeg, last, segSize)
	t.Logf("recovered %d segments %s..%s in %s", len(replayed), startSeg, last, time.Since(start).Round(time.Millisecond))
	if startSeg > "0000000100000000000000FF" || last < "000000010000000000000100" {
		t.Errorf("recovery of %s..%s did not cross segment ...FF", startSeg, last)
	}
	if got := archTableDigest(t, restored, "secret"); got != want {
		t.Errorf("restored content differs from the primary's:\n got %s\nwant %s", got, want)
	}
	restoredFiles := archRestoredFromLog(t, restored)
	for _, name := range replayed {
		if !restoredFiles[name] {
			t.Errorf("the restored server's log shows no %q restored from the archive", name)
		}
	}
}

// archWriteUntil writes WAL until the server writes into segment target or
// a later one: mostly 1 MB logical messages (cheap WAL), with a pgbench
// transaction run between them, so that real changes are spread out.
func archWriteUntil(t *testing.T, srv *harness.Postgres, target string) {
	t.Helper()
	for i := 0; archCurrentSegment(t, srv) < target; i++ {
		if i == 100 {
			t.Fatalf("wrote too little WAL: at %s after %d rounds, want %s", archCurrentSegment(t, srv), i, target)
		}
		srv.Psql("SELECT count(pg_logical_emit_message(false, 'walship-e2e-fill', repeat(md5(i::text), 32000))) FROM generate_series(1, 24) i")
		srv.Pgbench("-t", "100", "-c", "2", "-j", "2")
	}
}

// archStartAgent runs `walship agent --pgdata` for srv as the server user
// with env, logging verbosely to a file whose path it returns, and waits
// until its socket exists. The agent is killed after the test.
func archStartAgent(t *testing.T, srv *harness.Postgres, env []string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(harness.Walship(t), "agent", "--pgdata", srv.DataDir, "--verbose")
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	harness.AsServerUser(t, cmd)
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("agent log (%s), tail:\n%s", logPath, log)
		}
	})
	sock := filepath.Join(srv.DataDir, "pg_wal", "walship", "agent.sock")
	archWaitFor(t, 30*time.Second, "the agent's socket "+sock, func() bool {
		select {
		case <-done:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("walship agent exited: %s", log)
		default:
		}
		_, err := os.Stat(sock)
		return err == nil
	})
	return logPath
}

// archCheckPrefetchOrder runs wal-fetch for segment from into an empty
// pg_wal and checks that the prefetcher it starts spools the next n
// segments of the repository's segment size, with the right contents, and
// nothing but the 8 segments after from (wal-fetch's --prefetch).
func archCheckPrefetchOrder(t *testing.T, env []string, srv *harness.Postgres, segs []string, segSize uint32, from pg.Segment, n int) {
	t.Helper()
	var next []string
	s := from
	for range 8 {
		s = s.Next(segSize)
		next = append(next, s.Name())
	}
	want := next[:n]
	if segs[0] > from.Name() || segs[len(segs)-1] <= want[len(want)-1] {
		t.Fatalf("the archive %s..%s does not cover %s..%s", segs[0], segs[len(segs)-1], from.Name(), want[len(want)-1])
	}
	scratch := harness.NewServerDir(t)
	if err := os.Mkdir(filepath.Join(scratch, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	harness.GiveToServer(t, filepath.Join(scratch, "pg_wal"))
	res := runWalship(t, scratch, env, "wal-fetch", from.Name(), "pg_wal/RECOVERYXLOG")
	if res.code != 0 {
		t.Fatalf("wal-fetch %s: exit %d: %s", from.Name(), res.code, res.stderr)
	}
	if got, wantBytes := archReadFile(t, filepath.Join(scratch, "pg_wal", "RECOVERYXLOG")), archReadWal(t, srv, from.Name()); !bytes.Equal(got, wantBytes) {
		t.Fatalf("wal-fetch %s wrote bytes that differ from pg_wal", from.Name())
	}
	spool := spoolDir(scratch, env)
	spooled := func() []string {
		ents, _ := os.ReadDir(spool)
		var names []string
		for _, e := range ents {
			if pg.KindOf(e.Name()) == pg.KindSegment {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		return names
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := spooled()
		for _, name := range got {
			if !slices.Contains(next, name) {
				t.Fatalf("after wal-fetch %s the prefetch spool holds %s, not one of the next segments %v", from.Name(), name, next)
			}
		}
		if len(got) >= n && slices.Equal(got[:n], want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after wal-fetch %s the prefetch spool holds %v, want %v", from.Name(), got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A completed download is renamed into the spool, so its contents are final.
	for _, name := range want {
		if !bytes.Equal(archReadFile(t, filepath.Join(spool, name)), archReadWal(t, srv, name)) {
			t.Errorf("prefetched %s differs from pg_wal", name)
		}
	}
}

func archReadFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPromotedTimelineHistoryArchived recovers a server that archives to the
// same repository (the same database system, so it may) and checks that
// after its promotion the new timeline's history file and its first
// segments are stored and decode to the files in its pg_wal.
func TestPromotedTimelineHistoryArchived(t *testing.T) {
	const bucket, prefix = "timeline", "p"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	srv.ExecAll("CREATE TABLE t (i int)", "INSERT INTO t SELECT generate_series(1, 1000)")
	backup := srv.BaseBackup(t)
	srv.Psql("INSERT INTO t SELECT generate_series(1001, 3000)")
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, time.Minute)
	// The old primary stops, as a lost region would; it must not archive
	// on timeline 1 after the new one took over.
	srv.Stop()

	restored := harness.NewPostgresFromDir(t, backup, harness.PGOptions{
		RecoverySignal: true,
		Env:            env,
		Settings: archSettings(t,
			"restore_command = '"+harness.Walship(t)+" wal-fetch %f %p'"),
	})
	restored.WaitRecovered(t, 2*time.Minute)
	if n := restored.Psql("SELECT count(*) FROM t"); n != "3000" {
		t.Fatalf("restored server has %s rows, want 3000", n)
	}
	restored.WaitArchived(t, "00000002.history", time.Minute)
	hist := archReadWal(t, restored, "00000002.history")
	if !bytes.HasPrefix(hist, []byte("1\t")) {
		t.Errorf("00000002.history in pg_wal does not name timeline 1:\n%s", hist)
	}
	got, ok := storedFile(t, m, bucket, prefix, "00000002.history", nil)
	if !ok {
		t.Fatalf("00000002.history is not in s3://%s/%s", bucket, prefix)
	}
	if !bytes.Equal(got, hist) {
		t.Errorf("stored 00000002.history:\n%s\nwant:\n%s", got, hist)
	}

	// The new timeline's segments follow.
	restored.Psql("INSERT INTO t SELECT generate_series(3001, 4000)")
	seg := restored.SwitchWal()
	if !strings.HasPrefix(seg, "00000002") {
		t.Fatalf("switched segment %s is not on timeline 2", seg)
	}
	restored.WaitArchived(t, seg, time.Minute)
	got, ok = storedFile(t, m, bucket, prefix, seg, nil)
	if !ok || !bytes.Equal(got, archReadWal(t, restored, seg)) {
		t.Errorf("%s: stored %v, or decodes to bytes that differ from pg_wal", seg, ok)
	}
	// A .partial segment of the old timeline, when PostgreSQL archived one,
	// is stored too.
	done, _ := filepath.Glob(filepath.Join(restored.DataDir, "pg_wal", "archive_status", "*.partial.done"))
	for _, d := range done {
		name := strings.TrimSuffix(filepath.Base(d), ".done")
		got, ok := storedFile(t, m, bucket, prefix, name, nil)
		if !ok || !bytes.Equal(got, archReadWal(t, restored, name)) {
			t.Errorf("%s: stored %v, or decodes to bytes that differ from pg_wal", name, ok)
		}
	}
	t.Logf("partial segments archived: %v", done)
	if _, failed, _ := archArchiverStats(t, restored); failed != 0 {
		t.Errorf("the promoted server's archiver failed %d times", failed)
	}
	// Timeline 1 is intact: the last segment the old primary archived still
	// decodes (nothing overwrote it).
	if _, ok := storedFile(t, m, bucket, prefix, last, nil); !ok {
		t.Errorf("%s is gone from the repository", last)
	}
}

// archRecoverFrom starts a server on a base backup that recovers from the
// archive with restore_command = 'walship wal-fetch %f %p' and env.
func archRecoverFrom(t *testing.T, backup string, env []string) *harness.Postgres {
	t.Helper()
	return harness.NewPostgresFromDir(t, backup, harness.PGOptions{
		RecoverySignal: true,
		Env:            env,
		Settings: []string{
			"archive_mode = off",
			"restore_command = '" + harness.Walship(t) + " wal-fetch %f %p'",
		},
	})
}
