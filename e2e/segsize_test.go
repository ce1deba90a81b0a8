package e2e

import (
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

// TestNonDefaultSegmentSizes archives, backs up and restores clusters made
// with initdb --wal-segsize=1 and =64, into a file:// repository. Each
// cluster's WAL starts (pg_resetwal -l) a few segments before the end of a
// 4 GiB log id, so that archiving, the backup's WAL wait, the recoverable
// window, the prefetcher and recovery all cross to the next log id, where
// counting in 16 MiB segments would name the wrong files: 4096 segments of
// 1 MiB make a log id, and 64 of 64 MiB. Every restore must recover exactly
// the rows written before its target.
func TestNonDefaultSegmentSizes(t *testing.T) {
	for _, c := range []struct {
		name  string
		mib   int
		start string // the first WAL segment, two before a log id ends
	}{
		{"1MiB", 1, "000000010000000000000FFE"},
		{"64MiB", 64, "00000001000000000000003E"},
	} {
		t.Run(c.name, func(t *testing.T) { segSizeRoundTrip(t, c.mib, c.start) })
	}
}

func segSizeRoundTrip(t *testing.T, mib int, startSeg string) {
	segSize := mib << 20
	repoDir := harness.NewServerDir(t)
	env := []string{"WALSHIP_REPO=file://" + repoDir}
	srv := harness.NewPostgres(t, harness.PGOptions{
		InitdbArgs: []string{fmt.Sprintf("--wal-segsize=%d", mib)},
		// min_wal_size must hold two segments.
		Settings: archSettings(t, "wal_keep_size = '1GB'", fmt.Sprintf("min_wal_size = '%dMB'", max(80, 2*mib))),
		Env:      env,
		NoStart:  true,
	})
	reset := exec.Command(filepath.Join(srv.BinDir, "pg_resetwal"), "-l", startSeg, "-D", srv.DataDir)
	harness.AsServerUser(t, reset)
	if out, err := reset.CombinedOutput(); err != nil {
		t.Fatalf("pg_resetwal -l %s: %v\n%s", startSeg, err, out)
	}
	srv.Start()
	if got, want := srv.Psql("SHOW wal_segment_size"), fmt.Sprintf("%dMB", mib); got != want {
		t.Fatalf("wal_segment_size = %s, want %s", got, want)
	}
	if cur := archCurrentSegment(t, srv); cur[:16] != startSeg[:16] {
		t.Fatalf("the server writes %s, not in the log id of %s", cur, startSeg)
	}
	nextLog := fmt.Sprintf("%s%08X00000000", startSeg[:8], mustHex(t, startSeg[8:16])+1)

	srv.ExecAll("CREATE TABLE t (batch int NOT NULL, i int NOT NULL)")
	batch := func(n int) {
		srv.Psql(fmt.Sprintf("INSERT INTO t SELECT %d, g FROM generate_series(1, %d) g", n, 100*n))
	}
	batch(1) // 100 rows, in the backup
	sum := backupOf(t, srv, env)
	if sum.WALSegmentSize != uint32(segSize) || sum.StartWAL[:16] != startSeg[:16] {
		t.Fatalf("backup %s: wal_segment_size %d from %s; want %d in the log id of %s", sum.ID, sum.WALSegmentSize, sum.StartWAL, segSize, startSeg)
	}
	batch(2) // 300
	lsnAfter2 := srv.Psql("SELECT pg_current_wal_lsn()")
	// Cross into the next log id: four segments' worth of cheap WAL.
	srv.Psql(fmt.Sprintf("SELECT count(pg_logical_emit_message(false, 'walship-e2e-fill', repeat('x', 1 << 20))) FROM generate_series(1, %d)", 4*mib+1))
	batch(3) // 600
	time.Sleep(1100 * time.Millisecond)
	afterBatch3 := srv.Psql("SELECT now()")
	time.Sleep(1100 * time.Millisecond)
	batch(4) // 1000: the end of the archive
	last := srv.SwitchWal()
	if last < nextLog {
		t.Fatalf("the WAL ends in %s, before the next log id %s", last, nextLog)
	}
	srv.WaitArchived(t, last, 2*time.Minute)
	for _, name := range []string{startSeg, nextLog, last} {
		if _, err := os.Stat(filepath.Join(repoDir, "wal", name[:16], name)); err != nil {
			t.Errorf("segment %s is not in the repository: %v", name, err)
		}
	}
	if id := fileIdentity(t, repoDir); id.WALSegmentSize != uint32(segSize) {
		t.Errorf("walship.json records wal_segment_size %d, want %d", id.WALSegmentSize, segSize)
	}

	// The window of timeline 1 reaches the last segment, in the next log id.
	var listed []struct {
		catalog.BackupSummary
		Windows []catalog.Window `json:"recoverable_windows"`
	}
	r := runWalship(t, "/", env, "backup", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 1 || len(listed[0].Windows) != 1 {
		t.Fatalf("backup list --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if w := listed[0].Windows[0]; !w.Complete || w.EndWAL < last {
		t.Errorf("window in backup list --json: %+v; want complete, up to at least %s", w, last)
	}
	r = runWalship(t, "/", env, "verify", "--to-latest", "--json")
	if r.code != 0 {
		t.Errorf("verify --to-latest: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The prefetcher counts in the repository's segment size across the log id.
	from, err := pg.ParseSegmentName(startSeg)
	if err != nil {
		t.Fatal(err)
	}
	archCheckPrefetchOrder(t, env, srv, archSegmentRange(t, startSeg, last, uint32(segSize)), uint32(segSize), from, 3)
	srv.Stop()

	for _, c := range []struct {
		name string
		args []string
		rows int
	}{
		{"lsn", []string{"--target-lsn", lsnAfter2}, 300},
		{"time", []string{"--target-time", afterBatch3}, 600},
		{"end", nil, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := harness.NewPGDataDir(t)
			args := append([]string{"restore", "--pgdata", dir}, c.args...)
			if r := runWalship(t, "/", env, args...); r.code != 0 {
				t.Fatalf("walship %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
			restored := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env, Settings: []string{"archive_mode = off"}})
			restored.WaitRecovered(t, 2*time.Minute)
			if got := restored.Psql("SELECT count(*) FROM t"); got != strconv.Itoa(c.rows) {
				t.Errorf("restored to %s: %s rows, want %d", strings.Join(c.args, " "), got, c.rows)
			}
			if c.rows == 1000 {
				// Recovery to the end replayed the next log id's segments from the archive.
				if restoredFiles := archRestoredFromLog(t, restored); !restoredFiles[nextLog] {
					t.Errorf("the restored server's log shows no %s restored from the archive", nextLog)
				}
			}
			restored.Stop()
		})
	}
}

func mustHex(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fileIdentity reads the identity record of a file:// repository.
func fileIdentity(t *testing.T, dir string) catalog.Identity {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, catalog.IdentityKey))
	if err != nil {
		t.Fatal(err)
	}
	var id catalog.Identity
	if err := json.Unmarshal(data, &id); err != nil {
		t.Fatal(err)
	}
	return id
}
