package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/pg"
)

// TestRestoredCopyDoesNotArchive: a copy restored from production and
// started with production's environment and configuration (archive_command
// pushing into the same repository) promotes to timeline 2 and archives
// nothing there: restore turned archiving off. Restored with --archive-mode
// preserve, a copy archives its timeline 2 as the source would. Before
// that, --delete-existing refuses the source's own directory while the
// source runs, though its postmaster.pid names a process this one cannot
// see (as from another PID namespace).
func TestRestoredCopyDoesNotArchive(t *testing.T) {
	const bucket, prefix = "copyarchive", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	srv.ExecAll("CREATE TABLE t (i int)", "INSERT INTO t SELECT generate_series(1, 100)")
	backupOf(t, srv, env)
	srv.WaitArchived(t, srv.SwitchWal(), time.Minute)

	pidPath := filepath.Join(srv.DataDir, "postmaster.pid")
	pidFile, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(pidFile), "\n")
	if err := os.WriteFile(pidPath, []byte("999999999\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runWalship(t, "/", env, "restore", "--pgdata", srv.DataDir, "--delete-existing")
	if err := os.WriteFile(pidPath, pidFile, 0o600); err != nil { // the server checks it every minute
		t.Fatal(err)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "belongs to a running PostgreSQL server") || !strings.Contains(r.stderr, "a server answers on") {
		t.Errorf("restore --delete-existing over a running server whose PID is not visible: exit %d, %s", r.code, r.stderr)
	}
	t.Logf("hidden PID: %s", strings.TrimSpace(r.stderr))
	if _, err := os.Stat(filepath.Join(srv.DataDir, "PG_VERSION")); err != nil {
		t.Fatalf("the running server's directory was touched: %v", err)
	}
	srv.Stop()

	timeline2 := func() []string {
		var keys []string
		for _, k := range m.ListObjects(t, bucket, prefix+"/wal/") {
			if strings.HasPrefix(path.Base(k), "00000002") {
				keys = append(keys, k)
			}
		}
		return keys
	}

	dir := harness.NewPGDataDir(t)
	r = runWalship(t, "/", env, "restore", "--pgdata", dir)
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "archiving: off") {
		t.Errorf("restore does not say archiving is off:\n%s", r.stdout)
	}
	copied := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env})
	copied.WaitRecovered(t, 2*time.Minute)
	if got := copied.Psql("SHOW archive_mode"); got != "off" {
		t.Errorf("the restored copy runs with archive_mode = %s", got)
	}
	copied.Psql("INSERT INTO t SELECT generate_series(101, 200)")
	if seg := copied.SwitchWal(); !strings.HasPrefix(seg, "00000002") {
		t.Fatalf("the copy writes %s, not on timeline 2", seg)
	}
	copied.Psql("CHECKPOINT")
	time.Sleep(3 * time.Second) // an archiver would have shipped it by now
	if keys := timeline2(); len(keys) != 0 {
		t.Errorf("the restored copy archived into the source's repository: %v", keys)
	}
	copied.Stop()

	dir = harness.NewPGDataDir(t)
	r = runWalship(t, "/", env, "restore", "--pgdata", dir, "--archive-mode", "preserve", "--json")
	var res struct {
		Archive string `json:"archive_mode"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Archive != "preserve" {
		t.Fatalf("restore --archive-mode preserve: exit %d, archive_mode %q\n%s%s", r.code, res.Archive, r.stdout, r.stderr)
	}
	kept := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env})
	kept.WaitRecovered(t, 2*time.Minute)
	seg := kept.SwitchWal()
	kept.WaitArchived(t, seg, time.Minute)
	if keys := timeline2(); !strings.Contains(strings.Join(keys, " "), "00000002.history") {
		t.Errorf("with --archive-mode preserve, timeline 2 is not archived: %v", keys)
	}
}

// TestRestoreConfQuote asks PostgreSQL itself how it reads a value that
// ConfQuote wrote into postgresql.auto.conf: a newline in it does not start
// another setting, and the value comes back unchanged.
func TestRestoreConfQuote(t *testing.T) {
	srv := harness.NewPostgres(t, harness.PGOptions{NoStart: true})
	value := "/bin/true %f\nrecovery_target_action = 'shutdown'\r\n# a \\ and a tab\t"
	auto := filepath.Join(srv.DataDir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("restore_command = " + pg.ConfQuote(value) + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	show := func(name string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(srv.BinDir, "postgres"), "-D", srv.DataDir, "-C", name)
		cmd.Dir, cmd.Env = "/", []string{"PATH=/usr/bin:/bin"}
		out, err := harness.AsServerUser(t, cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("postgres -C %s: %v\n%s", name, err, out)
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	if got := show("restore_command"); got != value {
		t.Errorf("PostgreSQL reads restore_command as %q, want %q", got, value)
	}
	if got := show("recovery_target_action"); got != "pause" {
		t.Errorf("recovery_target_action = %q: the value of restore_command set another setting", got)
	}
}
