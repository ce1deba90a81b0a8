package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
)

// TestBackupToMinIO takes base backups of a real server with a tablespace
// into MinIO and checks them with minio-go rather than walship's S3 code:
// every file of the data directory that a backup must keep is in the
// manifest, every file decodes from the data objects to its manifest
// checksum, and the WAL segment that ends the backup is archived. It then
// kills a backup stuck in pg_backup_stop (archiving broken) with SIGKILL:
// no complete backup appears, the next backup works, and delete removes a
// backup's manifest and objects.
func TestBackupToMinIO(t *testing.T) {
	const bucket, prefix = "backups", "cluster-b"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	srv := harness.NewPostgres(t, harness.PGOptions{
		Settings: archSettings(t),
		Env:      m.Env(bucket, prefix),
	})
	tsDir := harness.NewServerDir(t)
	srv.ExecAll(
		"CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 200000) g",
		"CREATE TABLESPACE ts LOCATION '"+tsDir+"'",
		"CREATE TABLE t2 TABLESPACE ts AS SELECT g FROM generate_series(1, 50000) g",
		"CREATE UNLOGGED TABLE u AS SELECT g FROM generate_series(1, 50000) g",
		"CHECKPOINT",
	)
	unloggedFile := srv.Psql("SELECT pg_relation_filepath('u')")
	env := append(srv.Env(), m.Env(bucket, prefix)...)
	walship := func(args ...string) result {
		t.Helper()
		r := runWalship(t, srv.DataDir, env, args...)
		if r.code != 0 {
			t.Fatalf("walship %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}

	// An idle server: pg_backup_stop's segment switch must let the WAL gate pass.
	start := time.Now()
	var sum catalog.BackupSummary
	r := walship("backup", "--fast-checkpoint", "--jobs", "2", "--wal-timeout", "2m", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, r.stdout)
	}
	t.Logf("backup %s: %d bytes, %d stored, %d files, %d objects in %.1fs (test clock %s)",
		sum.ID, sum.Size, sum.StoredSize, sum.FileCount, sum.ObjectCount, sum.Duration, time.Since(start).Round(time.Millisecond))
	if sum.Status != catalog.StatusComplete || sum.Timeline != 1 || sum.StopWAL == "" || sum.PGVersion/10000 != 15 {
		t.Errorf("summary: %+v", sum)
	}

	raw, ok := rawObject(t, m, bucket, prefix+"/"+catalog.ManifestKey(sum.ID))
	if !ok {
		t.Fatal("no manifest in the bucket")
	}
	// The manifest is a codec object (compressed, checksummed) holding JSON;
	// summary.json beside it is the plain summary that listing reads.
	man := decodeManifest(t, raw, sum.ID)
	var stored catalog.BackupSummary
	if raw, ok := rawObject(t, m, bucket, prefix+"/"+catalog.SummaryKey(sum.ID)); !ok || json.Unmarshal(raw, &stored) != nil || stored != man.BackupSummary {
		t.Errorf("summary.json %+v does not match the manifest's summary %+v", stored, man.BackupSummary)
	}
	if sysID := srv.Psql("SELECT system_identifier FROM pg_control_system()"); strconv.FormatUint(man.SystemID, 10) != sysID {
		t.Errorf("manifest system id %d, server %s", man.SystemID, sysID)
	}
	if _, ok := storedFile(t, m, bucket, prefix, man.StopWAL, nil); !ok {
		t.Errorf("stop segment %s is not in the bucket", man.StopWAL)
	}
	checkManifestCoversDataDir(t, srv.DataDir, man, start)
	// An unlogged table: its init fork only (recovery rebuilds the rest).
	inManifest := map[string]bool{}
	for _, f := range man.Files {
		inManifest[f.Path] = true
	}
	if !inManifest[unloggedFile+"_init"] || inManifest[unloggedFile] || inManifest[unloggedFile+"_fsm"] {
		t.Errorf("unlogged table %s: init fork in the manifest %v, main fork %v, free space map %v (want only the init fork)",
			unloggedFile, inManifest[unloggedFile+"_init"], inManifest[unloggedFile], inManifest[unloggedFile+"_fsm"])
	}
	checkObjectsMatchManifest(t, m, bucket, prefix, man)

	// Break archiving: the next backup waits for its last segment; kill it there.
	srv.ExecAll("ALTER SYSTEM SET archive_command = '/bin/false'", "SELECT pg_reload_conf()")
	// With archiving broken, a backup fails at the WAL gate, says why, and
	// removes what it stored.
	r = runWalship(t, srv.DataDir, env, "backup", "--wal-timeout", "3s")
	if r.code == 0 || !strings.Contains(r.stderr, "archive_command") {
		t.Errorf("backup with broken archiving: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if keys := m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix); len(keys) != len(man.Objects)+3 { // + manifest, summary, started
		t.Errorf("the failed backup left objects behind: %v", keys)
	}
	t.Logf("the failed backup says: %s", strings.TrimSpace(r.stderr))
	// A second one is killed while it waits for its last WAL segment, with
	// every data object stored.
	killedLog := filepath.Join(t.TempDir(), "killed.log")
	out, err := os.Create(killedLog)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // walship writes through the inherited descriptor
	cmd := exec.Command(harness.Walship(t), "backup", "--jobs", "2", "--wal-timeout", "5m", "--verbose")
	cmd.Dir = srv.DataDir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	harness.AsServerUser(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		text, _ := os.ReadFile(killedLog)
		if strings.Contains(string(text), "waiting for the backup's WAL segments") {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the backup never reached the WAL gate:\n%s", text)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	srv.ExecAll("ALTER SYSTEM RESET archive_command", "SELECT pg_reload_conf()")

	var list []catalog.BackupSummary
	r = walship("backup", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].ID != sum.ID {
		t.Fatalf("after the killed backup, list --json = %s (%v); want only %s", r.stdout, err, sum.ID)
	}
	if r = walship("backup", "list"); !strings.Contains(r.stdout, "incomplete: 1") || !strings.Contains(r.stdout, sum.ID) {
		t.Errorf("backup list does not show the complete and the incomplete backup:\n%s", r.stdout)
	}

	// The next backup works, and delete removes the first one entirely.
	r = walship("backup", "--jobs", "2", "--wal-timeout", "2m")
	if !strings.Contains(r.stdout, "complete") {
		t.Errorf("backup output: %q", r.stdout)
	}
	if r = walship("backup", "show", sum.ID); !strings.Contains(r.stdout, sum.StopWAL) {
		t.Errorf("backup show:\n%s", r.stdout)
	}
	walship("backup", "delete", sum.ID)
	if left := m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix+sum.ID+"/"); len(left) != 0 {
		t.Errorf("objects left after delete: %v", left)
	}
	r = walship("backup", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].ID == sum.ID {
		t.Errorf("after delete, list --json = %s (%v)", r.stdout, err)
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// TestBackupWaitsForAllItsWAL: a backup is recorded only when every WAL
// segment from its start to its stop is in the repository. A segment in the
// middle of its range is removed from the bucket while the stop segment is
// archived (as when look-ahead or the agent stored later segments first and
// an earlier one never arrived): the backup fails naming that segment and
// is not listed. Then a backup whose started marker is removed while it
// waits for WAL (a cleanup of leftovers with a short grace) fails without
// writing its manifest.
func TestBackupWaitsForAllItsWAL(t *testing.T) {
	const bucket, prefix = "gap", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	// Big enough that copying takes a while: the test pauses the backup there.
	srv.ExecAll("CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 1000000) g", "CHECKPOINT")
	srv.WaitArchived(t, srv.SwitchWal(), 2*time.Minute)
	env = append(srv.Env(), env...)
	listed := func() []catalog.BackupSummary {
		t.Helper()
		r := runWalship(t, srv.DataDir, env, "backup", "list", "--json")
		var list []catalog.BackupSummary
		if err := json.Unmarshal([]byte(r.stdout), &list); r.code != 0 || err != nil {
			t.Fatalf("backup list --json: exit %d (%v)\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		return list
	}

	// Pause the backup while it copies, after pg_backup_start and before
	// pg_backup_stop, and meanwhile finish two segments: the start one and
	// the next, which is then removed from the bucket.
	b := startBackup(t, srv.DataDir, env, "--jobs", "1", "--wal-timeout", "5s")
	b.pauseWhileCopying(t, srv)
	srv.SwitchWal()
	middle := srv.SwitchWal()
	srv.WaitArchived(t, middle, 2*time.Minute)
	key, _ := catalog.WALKey(middle)
	removeObject(t, m, bucket, prefix+"/"+key)
	b.cmd.Process.Signal(syscall.SIGCONT)
	code, text := b.wait(t)
	if code == 0 || !strings.Contains(text, middle) || !strings.Contains(text, "not complete") {
		t.Errorf("backup with %s missing: exit %d, want a failure naming it:\n%s", middle, code, text)
	}
	if list := listed(); len(list) != 0 {
		t.Errorf("backup list shows %+v after a backup whose WAL has a gap", list)
	}
	t.Logf("the backup with a gap in its WAL says: %s", lastLine(text))

	// Archiving stops, so the next backup waits for its WAL; its started
	// marker is removed then, and archiving resumes.
	srv.ExecAll("ALTER SYSTEM SET archive_command = '/bin/false'", "SELECT pg_reload_conf()")
	b = startBackup(t, srv.DataDir, env, "--jobs", "1", "--wal-timeout", "2m")
	b.waitForLog(t, "waiting for the backup's WAL segments")
	var started []string
	for _, k := range m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix) {
		if strings.HasSuffix(k, "/started.json") {
			started = append(started, k)
		}
	}
	if len(started) != 1 {
		t.Fatalf("want the started marker of one running backup, found %v", started)
	}
	removeObject(t, m, bucket, started[0])
	srv.ExecAll("ALTER SYSTEM RESET archive_command", "SELECT pg_reload_conf()")
	code, text = b.wait(t)
	if code == 0 || !strings.Contains(text, "started marker") {
		t.Errorf("backup whose started marker was removed: exit %d, want a failure saying so:\n%s", code, text)
	}
	if keys := m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix); len(keys) != 0 {
		t.Errorf("objects left in backups/: %v", keys)
	}
	if list := listed(); len(list) != 0 {
		t.Errorf("backup list shows %+v after a backup that lost its started marker", list)
	}
	t.Logf("the backup that lost its started marker says: %s", lastLine(text))
}

// TestBackupOfAStandbyAcrossAPromotion backs up a cascading standby whose
// upstream standby is promoted while the backup runs: the backup starts on
// timeline 1 and stops on timeline 2. The old primary stops first, so
// timeline 1's copy of the segment where timeline 2 begins is archived only
// as .partial. The backup must wait for timeline 1's segments before that
// one and timeline 2's from it to the stop, not for timeline 1's copy.
func TestBackupOfAStandbyAcrossAPromotion(t *testing.T) {
	const bucket, prefix = "promote", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	fetch := "restore_command = '" + harness.Walship(t) + " wal-fetch %f %p'"
	primary := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	primary.ExecAll("CREATE TABLE t AS SELECT g AS i, md5(g::text) AS h FROM generate_series(1, 1000000) g", "CHECKPOINT")
	primary.WaitArchived(t, primary.SwitchWal(), 2*time.Minute)
	upstream := harness.NewPostgresFromDir(t, primary.BaseBackup(t), harness.PGOptions{
		Env: env, StandbySignal: true,
		Settings: append(archSettings(t), "hot_standby = on", fetch, "primary_conninfo = '"+primary.ConnString()+"'"),
	})
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("the upstream standby's rows", func() bool { out, _ := upstream.TryPsql("SELECT count(*) FROM t"); return out == "1000000" })
	standby := harness.NewPostgresFromDir(t, upstream.BaseBackup(t), harness.PGOptions{
		Env: env, StandbySignal: true,
		Settings: []string{"archive_mode = off", "hot_standby = on", fetch, "primary_conninfo = '" + upstream.ConnString() + "'"},
	})
	waitFor("the cascading standby's rows", func() bool { out, _ := standby.TryPsql("SELECT count(*) FROM t"); return out == "1000000" })

	// Pause the backup while it copies, then fail over: the primary stops,
	// the upstream standby becomes a primary on timeline 2, and the backed-up
	// standby follows it.
	b := startBackup(t, standby.DataDir, append(standby.Env(), env...), "--jobs", "1", "--wal-timeout", "2m", "--json")
	b.pauseWhileCopying(t, standby)
	primary.Stop()
	upstream.ExecAll("SELECT pg_promote()", "INSERT INTO t SELECT g, 'after' FROM generate_series(1, 1000) g", "CHECKPOINT")
	waitFor("the standby to replay timeline 2", func() bool {
		out, _ := standby.TryPsql("SELECT count(*) FROM t WHERE h = 'after'")
		return out == "1000"
	})
	// A restartpoint moves the standby's minimum recovery point, where the
	// backup stops, onto timeline 2.
	standby.ExecAll("CHECKPOINT")
	if tli := standby.Psql("SELECT min_recovery_end_timeline FROM pg_control_recovery()"); tli != "2" {
		t.Fatalf("the standby's minimum recovery point is on timeline %s, want 2", tli)
	}
	b.cmd.Process.Signal(syscall.SIGCONT)
	// A standby's backup ends on WAL its upstream archives: keep switching.
	stop, switching := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(switching)
		for {
			upstream.TryPsql("INSERT INTO t VALUES (0, 'switch'); SELECT pg_switch_wal()")
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	code, text := b.wait(t)
	close(stop)
	<-switching
	if code != 0 {
		t.Fatalf("backup across a promotion: exit %d\n%s", code, text)
	}
	var sum catalog.BackupSummary
	if err := json.Unmarshal([]byte(text[strings.Index(text, "{"):]), &sum); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, text)
	}
	if sum.Timeline != 1 || !strings.HasPrefix(sum.StartWAL, "00000001") || !strings.HasPrefix(sum.StopWAL, "00000002") {
		t.Errorf("want a backup from timeline 1 to timeline 2: timeline %d, WAL %s..%s", sum.Timeline, sum.StartWAL, sum.StopWAL)
	}
	t.Logf("backup %s of the standby: WAL %s..%s", sum.ID, sum.StartWAL, sum.StopWAL)

	// Timeline 1's copy of the segment where timeline 2 begins was never
	// archived whole (the old primary stopped in it): the backup did not
	// wait for it.
	history, ok := storedFile(t, m, bucket, prefix, "00000002.history", &codec.Decoder{})
	if !ok {
		t.Fatal("00000002.history is not in the bucket")
	}
	hist, err := catalog.ParseHistory(string(history))
	if err != nil || len(hist) != 1 {
		t.Fatalf("00000002.history: %v %q", err, history)
	}
	switchSeg := hist[0].Switch.Segment(1, sum.WALSegmentSize).Name()
	if _, ok := storedFile(t, m, bucket, prefix, switchSeg, nil); ok {
		t.Errorf("%s, where timeline 2 begins, is archived: the test meant the old primary to stop in it", switchSeg)
	}
	if _, ok := storedFile(t, m, bucket, prefix, sum.StopWAL, nil); !ok {
		t.Errorf("the stop segment %s is not in the bucket", sum.StopWAL)
	}
	if _, ok := rawObject(t, m, bucket, prefix+"/"+catalog.ManifestKey(sum.ID)); !ok {
		t.Error("no manifest")
	}
}

// runningBackup is `walship backup --verbose` running in the background,
// its output in a file.
type runningBackup struct {
	cmd *exec.Cmd
	log string
}

func startBackup(t *testing.T, dir string, env []string, args ...string) *runningBackup {
	t.Helper()
	b := &runningBackup{log: filepath.Join(t.TempDir(), "backup.log")}
	out, err := os.Create(b.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // walship writes through the inherited descriptor
	b.cmd = exec.Command(harness.Walship(t), append([]string{"backup", "--verbose"}, args...)...)
	b.cmd.Dir = dir
	b.cmd.Env = append([]string{"PATH=/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED=true"}, env...)
	b.cmd.Stdout, b.cmd.Stderr = out, out
	harness.AsServerUser(t, b.cmd)
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			b.cmd.Process.Kill()
			b.cmd.Wait()
		}
	})
	return b
}

// waitForLog waits until the backup's output holds text.
// pauseWhileCopying stops the backup (SIGSTOP) once it copies files, and
// checks it was paused after pg_backup_start and before pg_backup_stop.
func (b *runningBackup) pauseWhileCopying(t *testing.T, srv *harness.Postgres) {
	t.Helper()
	b.waitForLog(t, "backup copying")
	b.cmd.Process.Signal(syscall.SIGSTOP)
	if q := srv.Psql("SELECT query FROM pg_stat_activity WHERE application_name = 'walship'"); !strings.Contains(q, "pg_backup_start") {
		b.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("the backup could not be paused before pg_backup_stop (its last query: %q): make its data directory bigger", q)
	}
}

func (b *runningBackup) waitForLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := os.ReadFile(b.log)
		if strings.Contains(string(out), text) {
			return
		}
		if time.Now().After(deadline) || b.cmd.ProcessState != nil {
			t.Fatalf("the backup never logged %q:\n%s", text, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait waits for the backup to end and returns its exit code and output.
func (b *runningBackup) wait(t *testing.T) (int, string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		b.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		b.cmd.Process.Kill()
		<-done
		t.Error("the backup did not end within 3 minutes")
	}
	out, _ := os.ReadFile(b.log)
	return b.cmd.ProcessState.ExitCode(), string(out)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// checkManifestCoversDataDir walks the data directory (and tablespaces)
// with its own copy of the documented exclusions and checks that every file
// older than the backup is in the manifest, and that files the server does
// not change while idle have the same size and checksum.
func checkManifestCoversDataDir(t *testing.T, pgdata string, man *catalog.Manifest, before time.Time) {
	t.Helper()
	byPath := map[string]catalog.BackupFile{}
	for _, f := range man.Files {
		byPath[f.Path] = f
	}
	excluded := func(rel string) bool {
		base := filepath.Base(rel)
		for _, d := range []string{"pg_wal/", "pg_replslot/", "pg_dynshmem/", "pg_notify/", "pg_serial/", "pg_snapshots/", "pg_stat_tmp/", "pg_subtrans/"} {
			if strings.HasPrefix(rel, d) && rel != "pg_wal/archive_status" {
				return true
			}
		}
		switch rel {
		case "postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map":
			return true
		}
		if node, fork, _ := strings.Cut(strings.SplitN(base, ".", 2)[0], "_"); fork != "init" && node != "" && strings.Trim(node, "0123456789") == "" {
			if _, err := os.Stat(filepath.Join(pgdata, filepath.Dir(rel), node+"_init")); err == nil {
				return true // a fork of an unlogged relation: only its init fork is kept
			}
		}
		return strings.HasPrefix(base, "pgsql_tmp") || base == "pg_internal.init"
	}
	seen := 0
	err := filepath.WalkDir(pgdata, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(pgdata, p)
		if rel == "." {
			return nil
		}
		if excluded(rel) {
			return nil
		}
		info, err := os.Stat(p) // follows the tablespace symlinks
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if byPath[rel].Type != catalog.TypeLink || byPath[rel].Tablespace == 0 {
				t.Errorf("%s: tablespace link not in the manifest: %+v", rel, byPath[rel])
			}
			return filepath.WalkDir(p+"/", func(q string, _ fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				sub, _ := filepath.Rel(p, q)
				if fi, _ := os.Stat(q); sub != "." && fi.Mode().IsRegular() && fi.ModTime().Before(before) {
					seen++
					if _, ok := byPath[rel+"/"+sub]; !ok {
						t.Errorf("tablespace file %s/%s is missing from the manifest", rel, sub)
					}
				}
				return nil
			})
		}
		if !info.Mode().IsRegular() || info.ModTime().After(before) {
			return nil
		}
		seen++
		if _, ok := byPath[rel]; !ok {
			t.Errorf("%s is missing from the manifest", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"PG_VERSION", "base/1/PG_VERSION", "postgresql.conf"} {
		data, err := os.ReadFile(filepath.Join(pgdata, rel))
		if err != nil {
			t.Fatal(err)
		}
		s := xxh3.Hash128(data).Bytes()
		if f := byPath[rel]; f.Size != int64(len(data)) || f.Checksum != hex.EncodeToString(s[:]) {
			t.Errorf("%s: manifest %d bytes %s, disk %d bytes %x", rel, f.Size, f.Checksum, len(data), s)
		}
	}
	for _, rel := range []string{"postmaster.pid", "pg_wal/" + man.StartWAL} {
		if _, ok := byPath[rel]; ok {
			t.Errorf("%s must not be in a backup", rel)
		}
	}
	if f := byPath["backup_label"]; f.Size == 0 || !strings.Contains(man.BackupLabel, "START WAL LOCATION") {
		t.Errorf("backup_label: %+v", f)
	}
	t.Logf("%d files on disk, %d entries in the manifest", seen, len(man.Files))
}

// checkObjectsMatchManifest decodes every data object and checks every
// file's bytes against its size and checksum in the manifest.
func checkObjectsMatchManifest(t *testing.T, m *harness.MinIO, bucket, prefix string, man *catalog.Manifest) {
	t.Helper()
	objs := make([][]byte, len(man.Objects))
	for i, o := range man.Objects {
		raw, ok := rawObject(t, m, bucket, prefix+"/"+o.Key)
		if !ok {
			t.Fatalf("object %s is missing", o.Key)
		}
		var buf bytes.Buffer
		if _, err := (&codec.Decoder{}).Decode(bytes.NewReader(raw), &buf, o.Key); err != nil {
			t.Fatalf("decode %s: %v", o.Key, err)
		}
		objs[i] = buf.Bytes()
	}
	for _, f := range man.Files {
		if f.Type != catalog.TypeFile {
			continue
		}
		h := xxh3.New128()
		var n int64
		for _, p := range f.Parts {
			h.Write(objs[p.Object][p.Offset : p.Offset+p.Length])
			n += p.Length
		}
		if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.Checksum {
			t.Errorf("%s: objects hold %d bytes with another checksum than the manifest's %d bytes %s", f.Path, n, f.Size, f.Checksum)
		}
	}
}

// TestBackupFromStandby backs up a streaming standby while its primary
// writes and switches WAL (the primary archives; the WAL gate waits for the
// primary's copy of the segment that ends the backup), then restores the
// backup into a new directory: the restored server holds exactly the
// primary's rows (pg_dumpall's outputs are equal) and amcheck passes. pg_control, whose minimum recovery point marks where a
// standby's copy is consistent, is the last file the backup read.
func TestBackupFromStandby(t *testing.T) {
	const bucket, prefix = "standby", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	primary := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	primary.ExecAll("CREATE TABLE t AS SELECT g AS i, md5(g::text) AS h FROM generate_series(1, 100000) g",
		"CREATE INDEX t_i ON t (i)", "CREATE EXTENSION amcheck",
		"CREATE UNLOGGED TABLE u AS SELECT g FROM generate_series(1, 1000) g", "CHECKPOINT")
	primary.WaitArchived(t, primary.SwitchWal(), 2*time.Minute)

	standby := harness.NewPostgresFromDir(t, primary.BaseBackup(t), harness.PGOptions{
		Env:           env,
		StandbySignal: true,
		Settings: []string{
			"archive_mode = off", "hot_standby = on",
			"primary_conninfo = '" + primary.ConnString() + "'",
			"restore_command = '" + harness.Walship(t) + " wal-fetch %f %p'",
		},
	})
	waitRows := func(srv *harness.Postgres, want string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for srv.Psql("SELECT count(*) FROM t") != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s rows never reached %s", srv.DataDir, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitRows(standby, "100000")

	// The primary keeps writing and switching segments while the standby is
	// backed up, as a busy primary would.
	// The backup starts once the writer wrote its first rows.
	stop := make(chan struct{})
	writerDone, writing := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		for n := 0; ; n++ {
			primary.TryPsql(fmt.Sprintf("INSERT INTO t SELECT 1000000 + %d * 100 + g, 'during' FROM generate_series(1, 100) g; SELECT pg_switch_wal()", n))
			if n == 0 {
				close(writing)
			}
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	<-writing
	r := runWalship(t, standby.DataDir, append(standby.Env(), env...), "backup", "--jobs", "2", "--wal-timeout", "2m", "--json")
	close(stop)
	<-writerDone
	if r.code != 0 {
		t.Fatalf("backup of the standby: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var sum catalog.BackupSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || !sum.FromStandby || sum.Status != catalog.StatusComplete {
		t.Fatalf("backup --json: %+v (%v)\n%s", sum, err, r.stdout)
	}
	raw, ok := rawObject(t, m, bucket, prefix+"/"+catalog.ManifestKey(sum.ID))
	if !ok {
		t.Fatal("no manifest")
	}
	man := decodeManifest(t, raw, sum.ID)
	if !strings.Contains(man.BackupLabel, "BACKUP FROM: standby") {
		t.Errorf("backup_label does not say it comes from a standby:\n%s", man.BackupLabel)
	}
	for _, f := range man.Files {
		if f.Path == "global/pg_control" && (len(f.Parts) != 1 || f.Parts[0].Object != len(man.Objects)-1) {
			t.Errorf("pg_control is not in the last object read: %+v of %d objects", f.Parts, len(man.Objects))
		}
	}
	checkObjectsMatchManifest(t, m, bucket, prefix, man)

	want := primary.Psql("SELECT count(*) FROM t")
	primary.WaitArchived(t, primary.SwitchWal(), 2*time.Minute)
	wantDump := dumpAll(t, primary)
	standby.Stop()
	primary.Stop()

	dir := harness.NewPGDataDir(t)
	if r := runWalship(t, "/", env, "restore", "--pgdata", dir, "--backup", sum.ID, "--jobs", "2"); r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	restored := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env, Settings: []string{"archive_mode = off"}})
	restored.WaitRecovered(t, 2*time.Minute)
	if got := restored.Psql("SELECT count(*) FROM t"); got != want {
		t.Errorf("restored from the standby's backup: %s rows, the primary had %s", got, want)
	}
	if got := restored.Psql("SELECT count(*) FROM t WHERE h = 'during'"); got == "0" {
		t.Error("none of the rows written during the backup came back")
	}
	if got := dumpAll(t, restored); got != wantDump {
		t.Errorf("pg_dumpall of the restored server differs from the primary's (%d and %d bytes)", len(got), len(wantDump))
	}
	// An unlogged table comes back empty and usable, as after a crash.
	if got := restored.Psql("INSERT INTO u VALUES (1); SELECT count(*) FROM u"); !strings.HasSuffix(got, "1") {
		t.Errorf("unlogged table after the restore: %q, want it empty before one insert", got)
	}
	// amcheck: the index and the table agree, entry for entry.
	if out, err := restored.TryPsql("SELECT bt_index_check('t_i', true)"); err != nil {
		t.Errorf("amcheck on the restored server: %v %s", err, out)
	}
	t.Logf("backup of the standby %s (%d files, stop %s in %s); restored %s rows", sum.ID, sum.FileCount, sum.StopLSN, sum.StopWAL, want)
}

// dumpAll is pg_dumpall's output for srv: every role, database, table and
// row, except the rows of unlogged tables (a restore empties them).
func dumpAll(t *testing.T, srv *harness.Postgres) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(harness.PGBinDir(t), "pg_dumpall"), "--no-unlogged-table-data", "--dbname", srv.ConnString())
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGSSLMODE=disable"}
	harness.AsServerUser(t, cmd)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dumpall on %s: %v", srv.DataDir, err)
	}
	// pg_dump 15.14+ brackets each database with a random \restrict key.
	return restrictKey.ReplaceAllString(string(out), `\${1}restrict KEY`)
}

var restrictKey = regexp.MustCompile(`(?m)^\\(un)?restrict \S+$`)
