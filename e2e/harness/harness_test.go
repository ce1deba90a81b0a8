package harness_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/walship/walship/e2e/harness"
)

func TestMinIORoundTrip(t *testing.T) {
	m := harness.StartMinIO(t)
	m.MakeBucket(t, "roundtrip")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	body := []byte("hello from the walship harness")
	if _, err := m.Client.PutObject(ctx, "roundtrip", "a/b.txt", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	got := getObject(ctx, t, m, "roundtrip", "a/b.txt")
	if !bytes.Equal(got, body) {
		t.Fatalf("read back %q, want %q", got, body)
	}
	if keys := m.ListObjects(t, "roundtrip", "a/"); len(keys) != 1 || keys[0] != "a/b.txt" {
		t.Fatalf("ListObjects = %v", keys)
	}

	// Stop kills the server; Start serves the same data on the same endpoint.
	endpoint := m.Endpoint
	m.Stop()
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := m.Client.ListBuckets(short); err == nil {
		t.Fatal("MinIO still answers after Stop")
	}
	m.Start()
	if m.Endpoint != endpoint {
		t.Fatalf("endpoint changed from %s to %s", endpoint, m.Endpoint)
	}
	if got := getObject(ctx, t, m, "roundtrip", "a/b.txt"); !bytes.Equal(got, body) {
		t.Fatalf("after restart read back %q", got)
	}

	env := strings.Join(m.Env("roundtrip", "pfx"), "\n")
	for _, want := range []string{"WALSHIP_REPO=s3://roundtrip/pfx", "WALSHIP_S3_ENDPOINT=" + m.Endpoint, "WALSHIP_S3_PATH_STYLE=true", "AWS_ACCESS_KEY_ID=" + m.AccessKey} {
		if !strings.Contains(env, want) {
			t.Errorf("Env lacks %s:\n%s", want, env)
		}
	}
}

func TestMinIOTLS(t *testing.T) {
	m := harness.StartMinIOWith(t, harness.MinIOOptions{TLS: true})
	if !strings.HasPrefix(m.Endpoint, "https://") || m.CAFile == "" {
		t.Fatalf("endpoint %s, CA file %q", m.Endpoint, m.CAFile)
	}
	m.MakeBucket(t, "tls")
	if !strings.Contains(strings.Join(m.Env("tls", ""), "\n"), "WALSHIP_S3_CA_FILE="+m.CAFile) {
		t.Fatal("Env lacks WALSHIP_S3_CA_FILE")
	}
}

func getObject(ctx context.Context, t *testing.T, m *harness.MinIO, bucket, key string) []byte {
	t.Helper()
	obj, err := m.Client.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPostgres(t *testing.T) {
	pg := harness.NewPostgres(t, harness.PGOptions{Settings: []string{"work_mem = '8MB'"}})

	// It runs as an unprivileged user, also when the tests run as root.
	if who := pg.Psql("SELECT current_setting('data_checksums') || ' ' || current_setting('work_mem')"); who != "on 8MB" {
		t.Fatalf("settings: %q", who)
	}
	pid, err := os.ReadFile(filepath.Join(pg.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join("/proc", strings.SplitN(string(pid), "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid == 0 {
		t.Fatal("postgres runs as root")
	}

	pg.Pgbench("-i", "-s", "1", "-q")
	if n := pg.Psql("SELECT count(*) FROM pgbench_accounts"); n != "100000" {
		t.Fatalf("pgbench_accounts has %s rows, want 100000", n)
	}
	pg.Pgbench("-t", "50", "-c", "2")
	if n := pg.Psql("SELECT count(*) FROM pgbench_history"); n != "100" {
		t.Fatalf("pgbench_history has %s rows, want 100", n)
	}

	pg.Stop()
	if pg.Running() {
		t.Fatal("still running after Stop")
	}
	if _, err := pg.TryPsql("SELECT 1"); err == nil {
		t.Fatal("psql works after Stop")
	}
	pg.Start()
	if n := pg.Psql("SELECT count(*) FROM pgbench_accounts"); n != "100000" {
		t.Fatalf("after restart: %s rows", n)
	}

	pg.ExecAll("CREATE TABLE crash(i int)", "INSERT INTO crash VALUES (1), (2)")
	pg.Kill()
	pg.Start() // crash recovery
	if n := pg.Psql("SELECT count(*) FROM crash"); n != "2" {
		t.Fatalf("after crash: %s rows", n)
	}
	if pg.ConnString() == "" || len(pg.Env()) == 0 {
		t.Fatal("no connection info")
	}
}

// The walship binary is built once and can be run by the server user, as
// archive_command does.
func TestWalshipBinary(t *testing.T) {
	if files, _ := filepath.Glob(filepath.Join(harness.ModuleRoot(t), "cmd", "walship", "*.go")); len(files) == 0 {
		t.Skip("cmd/walship has no Go files yet")
	}
	bin := harness.Walship(t)
	if again := harness.Walship(t); again != bin {
		t.Fatalf("second build at %s, first at %s", again, bin)
	}
	cmd := harness.AsServerUser(t, exec.Command(bin, "--help"))
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s --help as %s: %v\n%s", bin, harness.ServerUserName(t), err, out)
	}
}

// Archiving, a base backup without WAL and archive recovery from it work with
// plain cp as archive_command and restore_command: the plumbing the walship
// e2e tests use, without walship.
func TestArchiveAndRecover(t *testing.T) {
	archive := harness.NewServerDir(t)
	pg := harness.NewPostgres(t, harness.PGOptions{Settings: []string{
		"archive_mode = on",
		"archive_command = 'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'",
	}})
	pg.ExecAll("CREATE TABLE t(i int)", "INSERT INTO t SELECT generate_series(1, 1000)")
	backup := pg.BaseBackup(t)
	pg.Psql("INSERT INTO t SELECT generate_series(1001, 1500)")
	seg := pg.SwitchWal()
	pg.WaitArchived(t, seg, time.Minute)
	if _, err := os.Stat(filepath.Join(archive, seg)); err != nil {
		t.Fatalf("archived segment: %v", err)
	}

	restored := harness.NewPostgresFromDir(t, backup, harness.PGOptions{
		RecoverySignal: true,
		Settings: []string{
			"archive_mode = off",
			"restore_command = 'cp " + archive + "/%f %p'",
		},
	})
	restored.WaitRecovered(t, 2*time.Minute)
	if n := restored.Psql("SELECT count(*) FROM t"); n != "1500" {
		t.Fatalf("restored server has %s rows, want 1500", n)
	}
	if restored.Port == pg.Port || restored.DataDir == pg.DataDir {
		t.Fatal("restored server shares port or data directory with the original")
	}

	// An empty data directory for something else to fill.
	dir := harness.NewPGDataDir(t)
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Fatalf("NewPGDataDir: %v %v", entries, err)
	}
}
