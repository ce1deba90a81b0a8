package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/pg"
)

// cliSystemIDOf is the system identifier in a pg_control file's bytes.
func cliSystemIDOf(t *testing.T, control []byte) uint64 {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "global"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "global", "pg_control"), control, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := pg.ControlSystemID(dir)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// cliFetchEnv is env for wal-fetch without the detached prefetcher, so no
// process outlives the test.
func cliFetchEnv(env []string, extra ...string) []string {
	return append(append(append([]string{}, env...), "WALSHIP_WAL_PREFETCH=0"), extra...)
}

// cliNoDest fails the test when wal-fetch left DEST or a temporary file in pg_wal.
func cliNoDest(t *testing.T, dir, dest string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, dest)); err == nil {
		t.Errorf("%s exists after a failed fetch", dest)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, filepath.Dir(dest)))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".walship-tmp") {
			t.Errorf("temporary file %s left in %s", e.Name(), filepath.Dir(dest))
		}
	}
}

// A damaged object is reported as damaged (exit 128, naming the file) and
// never written to DEST; it is not retried for the whole budget either.
func TestFetchCorruptObject(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "fetch")
	seg := w.segA[0]
	dir := cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, dir, env, "wal-push", cliPlace(t, dir, seg.name, seg.data)), 0)
	key := cliKey(t, seg.name)
	orig := cliGetObject(t, m, "fetch", key)
	start := cliPayloadStart(t, orig)
	mid := start + (len(orig)-start)/2

	flipped := bytes.Clone(orig)
	flipped[mid] ^= 0x55
	for _, c := range []struct {
		name string
		obj  []byte
	}{
		{"flipped byte in the payload", flipped},
		{"flipped byte at the payload's end", append(bytes.Clone(orig[:len(orig)-1]), orig[len(orig)-1]^0x01)},
		{"truncated payload", orig[:mid]},
		{"truncated header", orig[:start-3]},
		{"not a walship object", seg.data[:4096]},
	} {
		t.Run(c.name, func(t *testing.T) {
			cliPutObject(t, m, "fetch", key, c.obj)
			fdir := cliDataDir(t, w.controlA)
			began := time.Now()
			r := cliRun(t, fdir, cliFetchEnv(env), "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG")
			cliExpect(t, r, 128, seg.name, "is damaged", key)
			cliOneMessage(t, r)
			cliNoDest(t, fdir, "pg_wal/RECOVERYXLOG")
			if took := time.Since(began); took > 20*time.Second {
				t.Errorf("wal-fetch of a damaged object took %s: it should not retry what will not heal", took.Round(time.Second))
			}
		})
	}

	// The original object fetches fine: the failures above were the damage.
	cliPutObject(t, m, "fetch", key, orig)
	fdir := cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, fdir, cliFetchEnv(env), "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG"), 0)
	if got := cliReadFile(t, filepath.Join(fdir, "pg_wal", "RECOVERYXLOG")); !bytes.Equal(got, seg.data) {
		t.Error("fetched segment differs from the original")
	}
}

// A file the archive does not hold is "not found" (exit 1, quiet), and
// nothing is written.
func TestFetchNotFound(t *testing.T) {
	w := cliFixtures(t)
	_, env := cliMinIO(t, "fetch")
	dir := cliDataDir(t, w.controlA)

	cliExpect(t, cliRun(t, dir, env, "wal-push", cliPlace(t, dir, w.segA[0].name, w.segA[0].data)), 0)
	system := fmt.Sprint(cliSystemIDOf(t, w.controlA))
	for _, name := range []string{w.segA[1].name, "00000002.history", w.segA[0].name + ".partial"} {
		r := cliRun(t, dir, cliFetchEnv(env), "wal-fetch", name, "pg_wal/RECOVERYXLOG", "--system-id", system)
		cliExpect(t, r, 1)
		if r.stderr != "" || r.stdout != "" {
			t.Errorf("wal-fetch %s (not archived) printed stdout %q stderr %q; PostgreSQL asks for missing files all the time", name, r.stdout, r.stderr)
		}
		cliNoDest(t, dir, "pg_wal/RECOVERYXLOG")
	}
	// With --verbose it says why.
	r := cliRun(t, dir, cliFetchEnv(env, "WALSHIP_VERBOSE=true"), "wal-fetch", w.segA[1].name, "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 1, w.segA[1].name, "not in the archive")
}

// "Not found" (exit 1) means: this repository exists, is the one recovery
// expects, and lacks the file. A location without a repository — a file://
// folder not mounted, a wrong S3 prefix, a deleted bucket, a repository never
// written to — or a repository of another database system is exit 128:
// PostgreSQL would otherwise end recovery early and fork a timeline.
func TestFetchWithoutTheRepositoryIsFatal(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "fetch")
	dir := cliDataDir(t, w.controlA)
	seg := w.segA[0]
	fetch := func(t *testing.T, env []string, extra ...string) result {
		t.Helper()
		args := append([]string{"wal-fetch", w.segA[1].name, "pg_wal/RECOVERYXLOG"}, extra...)
		r := cliRun(t, dir, cliFetchEnv(env), args...)
		cliNoDest(t, dir, "pg_wal/RECOVERYXLOG")
		return r
	}
	t.Run("repository never written to", func(t *testing.T) {
		cliExpect(t, fetch(t, env), 128, "not the repository recovery expects", "walship.json")
	})
	cliExpect(t, cliRun(t, dir, env, "wal-push", cliPlace(t, dir, seg.name, seg.data)), 0)
	t.Run("healthy repository", func(t *testing.T) {
		cliExpect(t, fetch(t, env), 1)
	})
	t.Run("wrong prefix", func(t *testing.T) {
		cliExpect(t, fetch(t, append(env, "WALSHIP_REPO=s3://fetch/other")), 128, "s3://fetch/other", "walship.json")
	})
	t.Run("file folder not mounted", func(t *testing.T) {
		root := filepath.Join(dir, "mnt", "repo") // readable by the server's user; never created
		cliExpect(t, fetch(t, append(env, "WALSHIP_REPO=file://"+root)), 128, root, "walship.json")
	})
	t.Run("another system's repository", func(t *testing.T) {
		other := fmt.Sprint(cliSystemIDOf(t, w.controlB))
		cliExpect(t, fetch(t, env, "--system-id", other), 128, "recovery expects system "+other)
		cliExpect(t, fetch(t, env, "--system-id", fmt.Sprint(cliSystemIDOf(t, w.controlA))), 1)
	})
	t.Run("deleted bucket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Client.RemoveBucketWithOptions(ctx, "fetch", minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Fatal(err)
		}
		cliExpect(t, fetch(t, env), 128)
	})
}

// A store that is down is not "not found": exit 128 so that PostgreSQL stops
// recovery, within the retry budget; once the store is back the fetch works.
func TestFetchOutageIsNotNotFound(t *testing.T) {
	w := cliFixtures(t)
	m, env := cliMinIO(t, "fetch")
	seg := w.segA[0]
	dir := cliDataDir(t, w.controlA)
	cliExpect(t, cliRun(t, dir, env, "wal-push", cliPlace(t, dir, seg.name, seg.data)), 0)

	m.Stop()
	fenv := cliFetchEnv(env, "WALSHIP_RETRY_BUDGET=2s")
	// Both an archived name and one that is not: with the store down,
	// walship cannot know, so neither may read as "not found".
	for _, name := range []string{seg.name, w.segA[1].name} {
		began := time.Now()
		r := cliRun(t, dir, fenv, "wal-fetch", name, "pg_wal/RECOVERYXLOG")
		took := time.Since(began)
		cliExpect(t, r, 128, name, "connection refused")
		if !regexp.MustCompile(`(?i)giving up|failed`).MatchString(r.stderr) {
			t.Errorf("stderr does not say the fetch failed:\n%s", r.stderr)
		}
		cliFinalMessage(t, r)
		cliNoDest(t, dir, "pg_wal/RECOVERYXLOG")
		if took > 30*time.Second {
			t.Errorf("wal-fetch with WALSHIP_RETRY_BUDGET=2s took %s", took.Round(time.Second))
		}
	}

	m.Start()
	r := cliRun(t, dir, fenv, "wal-fetch", seg.name, "pg_wal/RECOVERYXLOG")
	cliExpect(t, r, 0)
	if got := cliReadFile(t, filepath.Join(dir, "pg_wal", "RECOVERYXLOG")); !bytes.Equal(got, seg.data) {
		t.Error("the segment fetched after the outage differs from the original")
	}
}

// PostgreSQL itself stops recovery when restore_command meets a damaged
// segment: FATAL, and no promotion with what was replayed so far.
func TestFetchIntoRecoveringServer(t *testing.T) {
	m, env := cliMinIO(t, "recover")
	bin := harness.Walship(t)
	src := harness.NewPostgres(t, harness.PGOptions{
		Settings: []string{"archive_mode = on", "archive_command = '" + bin + " wal-push %p'"},
		Env:      env,
	})
	src.ExecAll("CREATE TABLE t(i int)", "INSERT INTO t SELECT generate_series(1, 1000)")
	backup := src.BaseBackup(t)
	// Recovery replays the backup's segment and the next one (consistent
	// by then), and meets the damaged one after that: exit 1 there would
	// end recovery and promote a server that lacks the later transactions.
	src.Psql("INSERT INTO t SELECT generate_series(1001, 2000)")
	good := src.SwitchWal()
	src.Psql("INSERT INTO t SELECT generate_series(2001, 3000)")
	damaged := src.SwitchWal()
	src.Psql("INSERT INTO t SELECT generate_series(3001, 4000)")
	last := src.SwitchWal()
	src.WaitArchived(t, last, 2*time.Minute)
	src.Stop()

	label := string(cliReadFile(t, filepath.Join(backup, "backup_label")))
	if !strings.Contains(label, "START WAL LOCATION") || strings.Contains(label, "(file "+damaged+")") || strings.Contains(label, "(file "+good+")") {
		t.Fatalf("the backup starts in %s or %s; the test needs later segments:\n%s", good, damaged, label)
	}
	key := cliKey(t, damaged)
	obj := cliGetObject(t, m, "recover", key)
	start := cliPayloadStart(t, obj)
	obj[start+(len(obj)-start)/2] ^= 0x55
	cliPutObject(t, m, "recover", key, obj)

	restored := harness.NewPostgresFromDir(t, backup, harness.PGOptions{
		RecoverySignal: true,
		NoStart:        true,
		StartTimeout:   time.Minute,
		Settings: []string{
			"archive_mode = off",
			"restore_command = '" + bin + " wal-fetch %f %p'",
		},
		Env: env,
	})
	// The server may become ready for read-only queries (consistent after the
	// backup's segment) before it asks for the damaged one, or exit first.
	startErr := restored.TryStart()
	t.Logf("start: %v", startErr)
	deadline := time.Now().Add(90 * time.Second)
	for restored.Running() {
		if out, err := restored.TryPsql("SELECT pg_is_in_recovery()"); err == nil && out == "f" {
			t.Fatalf("the server left recovery (promoted) although segment %s is damaged", damaged)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still runs 90s after start; it should have stopped at the damaged segment %s", damaged)
		}
		time.Sleep(200 * time.Millisecond)
	}
	log := string(cliReadFile(t, restored.LogPath))
	for _, want := range []string{
		fmt.Sprintf(`restored log file "%s" from archive`, good),
		"consistent recovery state reached",
		fmt.Sprintf(`FATAL:  could not restore file "%s" from archive: child process exited with exit code 128`, damaged),
		damaged + " in s3://recover",
		"is damaged",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the server log lacks %q", want)
		}
	}
	for _, unwanted := range []string{"selected new timeline ID", "archive recovery complete", "database system is ready to accept connections"} {
		if strings.Contains(log, unwanted) {
			t.Errorf("the server log shows %q: recovery ended instead of stopping", unwanted)
		}
	}
	if _, err := os.Stat(filepath.Join(backup, "pg_wal", "00000002.history")); err == nil {
		t.Error("a new timeline's history file exists: the server promoted")
	}
	if t.Failed() {
		t.Logf("server log:\n%s", log)
	}
}
