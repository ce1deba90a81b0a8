package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/pg"
)

// retentionOutput is the part of retention --json the test reads.
type retentionOutput struct {
	DryRun         bool                       `json:"dry_run"`
	Kept           []catalog.BackupSummary    `json:"kept_backups"`
	Expired        []catalog.BackupSummary    `json:"expired_backups"`
	Incomplete     []catalog.IncompleteBackup `json:"incomplete_deleted"`
	IncompleteKept []catalog.IncompleteBackup `json:"incomplete_kept"`
	WAL            []string                   `json:"wal_deleted"`
	Windows        []catalog.Window           `json:"recoverable_windows"`
}

func backupIDs(list []catalog.BackupSummary) string {
	var out []string
	for _, b := range list {
		out = append(out, b.ID)
	}
	return strings.Join(out, " ")
}

// TestRetention takes two backups on timeline 1 with pgbench and inserts
// between them, promotes a restored copy to timeline 2 and takes a third
// backup there; a backup is SIGKILLed midway and two more leftovers of
// killed backups are crafted (one idle, one fresh, later). Then:
// walship backup removes leftovers idle past the grace period; retention
// --dry-run deletes nothing; a recovery window whose start lies between
// the second and third backup's ends deletes the first backup, the WAL
// before the second one's start and the idle leftovers; --keep 1 deletes
// the second backup and every WAL file only it needed (all of timeline 1,
// timeline 2 before the third backup) but no history file; a fresh
// incomplete backup is kept. Each time the test checks the exact list of objects left in MinIO,
// and at the end restores the oldest point still allowed and the newest,
// with their row counts: nothing needed was deleted.
func TestRetention(t *testing.T) {
	const bucket, prefix = "retention", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	srv.Pgbench("-i", "-s", "1", "-q")
	srv.ExecAll("CREATE TABLE t (i int)", "INSERT INTO t SELECT generate_series(1, 100)")
	backup := func(p *harness.Postgres, args ...string) catalog.BackupSummary {
		t.Helper()
		return backupOf(t, p, env, args...)
	}
	write := func(p *harness.Postgres, from, to int) {
		t.Helper()
		p.Pgbench("-t", "300", "-c", "2")
		p.Psql(fmt.Sprintf("INSERT INTO t SELECT generate_series(%d, %d)", from, to))
		p.WaitArchived(t, p.SwitchWal(), time.Minute)
	}
	b1 := backup(srv)
	write(srv, 101, 200)
	b2 := backup(srv)
	write(srv, 201, 300)
	srv.Stop()

	// A restored copy promotes to timeline 2 and archives there.
	dir := harness.NewPGDataDir(t)
	if r := runWalship(t, "/", env, "restore", "--pgdata", dir, "--archive-mode", "preserve"); r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	promoted := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env})
	promoted.WaitRecovered(t, 2*time.Minute)
	write(promoted, 301, 400)

	// A backup SIGKILLed midway leaves objects without a manifest: not
	// listed as complete, and removed by the next backup once idle for
	// longer than the grace period.
	craft := func(id string) {
		t.Helper()
		for _, name := range []string{"started.json", "data/000000", "data/000001"} {
			putObject(t, m, bucket, prefix+"/"+catalog.BackupKey(id, name), []byte("{}"))
		}
	}
	const l2, l3 = "20250102T000000Z", "20250103T000000Z"
	l1 := killedBackup(t, m, bucket, prefix, promoted, env)
	r := runWalship(t, "/", env, "backup", "list", "--json")
	if r.code != 0 || strings.Contains(r.stdout, l1) {
		t.Errorf("the killed backup %s is listed as complete: exit %d\n%s%s", l1, r.code, r.stdout, r.stderr)
	}
	time.Sleep(3 * time.Second)
	b3 := backup(promoted, "--incomplete-grace", "2s")
	if got := m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix+l1+"/"); len(got) != 0 {
		t.Errorf("walship backup left the leftovers of %s: %v", l1, got)
	}
	if b3.Timeline != 2 {
		t.Fatalf("third backup on timeline %d, want 2", b3.Timeline)
	}
	promoted.Psql("INSERT INTO t SELECT generate_series(401, 500)")
	promoted.WaitArchived(t, promoted.SwitchWal(), time.Minute)
	promoted.Stop()
	craft(l2)
	time.Sleep(3 * time.Second)
	r = runWalship(t, "/", env, "backup", "list")
	if !strings.Contains(r.stdout, "incomplete: 1") || strings.Contains(r.stdout, "2025010") {
		t.Errorf("backup list shows the crafted leftovers wrongly:\n%s", r.stdout)
	}

	retention := func(args ...string) retentionOutput {
		t.Helper()
		r := runWalship(t, "/", env, append([]string{"retention", "--incomplete-grace", "2s", "--json"}, args...)...)
		var out retentionOutput
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil {
			t.Fatalf("retention %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return out
	}
	all := m.ListObjects(t, bucket, prefix+"/")
	// expect lists what stays of all: keys of backups in keep and WAL
	// files for which keepWAL says so.
	expect := func(keep []string, keepWAL func(tli pg.Timeline, seg pg.LSN) bool) []string {
		var out []string
		for _, k := range all {
			key := strings.TrimPrefix(k, prefix+"/")
			name := key[strings.LastIndexByte(key, '/')+1:]
			switch {
			case strings.HasPrefix(key, catalog.BackupPrefix):
				id, _, _ := strings.Cut(strings.TrimPrefix(key, catalog.BackupPrefix), "/")
				if slices.Contains(keep, id) {
					out = append(out, k)
				}
			case pg.KindOf(name) == pg.KindHistory || !strings.HasPrefix(key, catalog.WALPrefix):
				out = append(out, k)
			default:
				s, err := pg.ParseSegmentName(name)
				if err != nil {
					t.Fatalf("unexpected object %s", k)
				}
				if keepWAL(s.Timeline, s.StartLSN(b1.WALSegmentSize)) {
					out = append(out, k)
				}
			}
		}
		return out
	}
	startOf := func(b catalog.BackupSummary) pg.LSN {
		s, _ := pg.ParseSegmentName(b.StartWAL)
		return s.StartLSN(b.WALSegmentSize)
	}
	checkLeft := func(what string, want []string) {
		t.Helper()
		got := m.ListObjects(t, bucket, prefix+"/")
		if !slices.Equal(got, want) {
			t.Errorf("%s: objects left:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if !slices.Contains(all, prefix+"/wal/00000002.history") {
		t.Fatalf("no history file for timeline 2 in %v", all)
	}

	dry := retention("--keep", "1", "--dry-run")
	if !dry.DryRun || backupIDs(dry.Expired) != b1.ID+" "+b2.ID || len(dry.Incomplete) != 1 || dry.Incomplete[0].ID != l2 ||
		len(dry.IncompleteKept) != 0 || len(dry.WAL) == 0 {
		t.Errorf("dry run: %+v", dry)
	}
	r = runWalship(t, "/", env, "retention", "--keep", "1", "--dry-run", "--incomplete-grace", "2s")
	for _, want := range []string{"dry run: nothing deleted; add --yes to delete", "would delete backup " + b1.ID, "would delete backup " + b2.ID,
		"would delete incomplete backup " + l2, "recoverable window"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("retention --dry-run: exit %d, no %q in:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	checkLeft("after --dry-run", all)

	// Before retention, the first backup verifies along timeline 1 into 2.
	r = runWalship(t, "/", env, "verify", "--backup", b1.ID, "--to-latest", "--json")
	var ver struct {
		OK      bool `json:"ok"`
		Backups []struct {
			WALTo string `json:"wal_to"`
		} `json:"backups"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ver); err != nil || r.code != 0 || !ver.OK || !strings.HasPrefix(ver.Backups[0].WALTo, "00000002") {
		t.Errorf("verify %s --to-latest: exit %d, %v\n%s%s", b1.ID, r.code, err, r.stdout, r.stderr)
	}

	// The window starts between the ends of the second and third backups.
	window := time.Since(b2.StopTime.Add(b3.StopTime.Sub(b2.StopTime) / 2)).Round(time.Second)
	out := retention("--recovery-window", fmt.Sprintf("%ds", int(window.Seconds())), "--yes")
	if out.DryRun || backupIDs(out.Expired) != b1.ID || backupIDs(out.Kept) != b2.ID+" "+b3.ID {
		t.Errorf("window %s: expired %q, kept %q; want %s expired", window, backupIDs(out.Expired), backupIDs(out.Kept), b1.ID)
	}
	t.Logf("window %s deleted %s and %d WAL files", window, backupIDs(out.Expired), len(out.WAL))
	if len(out.Incomplete) != 1 || out.Incomplete[0].ID != l2 {
		t.Errorf("window: incomplete backups deleted %+v, want %s", out.Incomplete, l2)
	}
	checkLeft("after the window", expect([]string{b2.ID, b3.ID}, func(tli pg.Timeline, lsn pg.LSN) bool {
		return lsn >= startOf(b2) // timeline 2 descends from timeline 1
	}))
	all = m.ListObjects(t, bucket, prefix+"/")

	out = retention("--keep", "1", "--yes")
	if out.DryRun || backupIDs(out.Expired) != b2.ID || backupIDs(out.Kept) != b3.ID || len(out.Windows) != 1 || out.Windows[0].Timeline != 2 {
		t.Errorf("keep 1: expired %q, kept %q, windows %+v", backupIDs(out.Expired), backupIDs(out.Kept), out.Windows)
	}
	checkLeft("after --keep 1", expect([]string{b3.ID}, func(tli pg.Timeline, lsn pg.LSN) bool {
		return tli == 2 && lsn >= startOf(b3)
	}))
	t.Logf("--keep 1 deleted %s and %d WAL files; left: %v", backupIDs(out.Expired), len(out.WAL), m.ListObjects(t, bucket, prefix+"/"))

	// A fresh incomplete backup may be running: it is kept, and so is the
	// WAL stored since it began (none here), whatever the policy says.
	craft(l3)
	left := m.ListObjects(t, bucket, prefix+"/")
	out = retention("--keep", "1", "--yes")
	if len(out.Incomplete) != 0 || len(out.IncompleteKept) != 1 || out.IncompleteKept[0].ID != l3 || len(out.Expired) != 0 || len(out.WAL) != 0 {
		t.Errorf("with a fresh incomplete backup: %+v; want %s kept and nothing deleted", out, l3)
	}
	checkLeft("with a fresh incomplete backup", left)

	// Nothing needed is gone: the oldest point (the end of the third
	// backup) and the newest restore with their rows, and verify agrees.
	if r := runWalship(t, "/", env, "verify", "--to-latest"); r.code != 0 {
		t.Errorf("verify --to-latest after retention: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runWalship(t, "/", env, "restore", "--pgdata", harness.NewPGDataDir(t), "--backup", b1.ID); r.code == 0 ||
		!strings.Contains(r.stderr, "no complete backup "+b1.ID) {
		t.Errorf("restore of the expired backup: exit %d, %s", r.code, r.stderr)
	}
	for _, c := range []struct {
		args []string
		rows string
	}{
		{[]string{"--backup", b3.ID, "--target-immediate"}, "400"},
		{nil, "500"},
	} {
		dir := harness.NewPGDataDir(t)
		if r := runWalship(t, "/", env, append([]string{"restore", "--pgdata", dir}, c.args...)...); r.code != 0 {
			t.Fatalf("restore %v: exit %d\n%s%s", c.args, r.code, r.stdout, r.stderr)
		}
		restored := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env, Settings: []string{"archive_mode = off"}})
		restored.WaitRecovered(t, 2*time.Minute)
		if got := restored.Psql("SELECT count(*) FROM t"); got != c.rows {
			t.Errorf("restore %v: %s rows, want %s", c.args, got, c.rows)
		}
		restored.Stop()
	}

	// Bad input: a clear error, exit 2, nothing deleted.
	before := m.ListObjects(t, bucket, prefix+"/")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--keep", "1", "--recovery-window", "30d"}, "not both"},
		{nil, "no retention policy"},
		{[]string{"--recovery-window", "30x"}, `--recovery-window "30x"`},
		{[]string{"--keep", "0"}, "--keep 0 would delete every backup"},
		{[]string{"--keep", "1", "--yes", "--dry-run"}, "contradict"},
		{[]string{"--keep", "1", "--incomplete-grace", "0s"}, "--incomplete-grace 0s"},
	} {
		r := runWalship(t, "/", env, append([]string{"retention"}, c.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("retention %v: exit %d, %q; want exit 2 saying %q", c.args, r.code, r.stderr, c.want)
		}
	}
	checkLeft("after bad input", before)
}

// killedBackup starts walship backup of p and SIGKILLs it as soon as it
// has stored its first data object, returning the backup's ID.
func killedBackup(t *testing.T, m *harness.MinIO, bucket, prefix string, p *harness.Postgres, env []string) string {
	t.Helper()
	before := m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix)
	cmd := exec.Command(harness.Walship(t), "backup", "--pgdata", p.DataDir, "--fast-checkpoint", "--jobs", "1")
	cmd.Dir = p.DataDir
	cmd.Env = append(append([]string{"PATH=/usr/bin:/bin"}, p.Env()...), env...)
	harness.AsServerUser(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, k := range m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix) {
			if !slices.Contains(before, k) && strings.Contains(k, "/data/") {
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()
				id, _, _ := strings.Cut(strings.TrimPrefix(k, prefix+"/"+catalog.BackupPrefix), "/")
				if _, ok := rawObject(t, m, bucket, prefix+"/"+catalog.ManifestKey(id)); ok {
					t.Fatalf("backup %s completed before it could be killed", id)
				}
				t.Logf("killed backup %s midway; it left %d objects", id, len(m.ListObjects(t, bucket, prefix+"/"+catalog.BackupPrefix+id+"/")))
				return id
			}
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	t.Fatal("walship backup stored no data object within 30 s")
	return ""
}
