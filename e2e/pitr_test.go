package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
)

// TestPointInTimeRecovery takes one base backup with walship, then writes
// batches of different sizes (100, 200, ... rows) with a recorded time, LSN,
// transaction ID and named restore point between them, archives the WAL
// with walship, and restores to each kind of target into a new data
// directory. Each restored server must recover to exactly the rows of the
// batches before its target, promote and accept writes. Every restore
// relocates the backup's tablespace with --tablespace (the original is in
// use). WAL and backup are encrypted with age, and the restored servers get
// only the S3 credentials in their environment: the repository's location
// and the key file come from the flags walship wrote into restore_command.
func TestPointInTimeRecovery(t *testing.T) {
	const bucket, prefix = "pitr", "db"
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
	env := append(m.Env(bucket, prefix), "WALSHIP_ENCRYPTION_KEY_FILE="+keyFile)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	tsDir := harness.NewServerDir(t)
	srv.ExecAll(
		"CREATE TABLE t (batch int NOT NULL, i int NOT NULL)",
		"CREATE TABLESPACE ts LOCATION '"+tsDir+"'",
		"CREATE TABLE ts_rows TABLESPACE ts AS SELECT g FROM generate_series(1, 777) g",
	)
	tsOID := srv.Psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'")
	batch := func(n int) {
		srv.Psql(fmt.Sprintf("INSERT INTO t SELECT %d, g FROM generate_series(1, %d) g", n, 100*n))
	}
	// pause makes the commit times of neighbouring batches differ clearly.
	pause := func() { time.Sleep(1100 * time.Millisecond) }

	batch(1) // in the backup: 100 rows
	sum := backupOf(t, srv, env, "--jobs", "2")
	if sum.Encryption != "age" {
		t.Fatalf("backup not encrypted: %+v", sum)
	}
	pause()
	batch(2) // 300 rows in all
	pause()
	afterBatch2 := srv.Psql("SELECT now()") // a time between batches 2 and 3
	pause()
	batch(3) // 600
	lsnAfter3 := srv.Psql("SELECT pg_current_wal_lsn()")
	pause()
	// Batch 4 in one transaction whose ID we keep: 1000 with it, 600 without.
	xid4 := srv.Psql("BEGIN; INSERT INTO t SELECT 4, g FROM generate_series(1, 400) g; SELECT txid_current(); COMMIT;")
	xid4 = xid4[strings.LastIndex(xid4, "\n")+1:]
	pause()
	batch(5) // 1500
	srv.Psql("SELECT pg_create_restore_point('after-batch-5')")
	pause()
	batch(6) // 2100: the end of the archive
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, 2*time.Minute)
	t.Logf("backup %s ended %s at %s; after batch 2: %s; after batch 3: LSN %s; batch 4: xid %s; archive ends with %s",
		sum.ID, sum.StopTime.Format(time.RFC3339Nano), sum.StopLSN, afterBatch2, lsnAfter3, xid4, last)

	// backup list shows the window of timeline 1, from the backup to the last segment.
	r := runWalship(t, "/", env, "backup", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "recoverable window") || !strings.Contains(r.stdout, last) {
		t.Errorf("backup list does not show the window up to %s:\n%s%s", last, r.stdout, r.stderr)
	}
	var listed []struct {
		catalog.BackupSummary
		Windows []catalog.Window `json:"recoverable_windows"`
	}
	r = runWalship(t, "/", env, "backup", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 1 || len(listed[0].Windows) != 1 {
		t.Fatalf("backup list --json: %v\n%s", err, r.stdout)
	}
	if w := listed[0].Windows[0]; w.Timeline != 1 || w.Backup != sum.ID || w.StartLSN != sum.StopLSN || w.EndWAL < last || !w.Complete {
		t.Errorf("window in backup list --json: %+v; want timeline 1 from %s to at least %s", w, sum.StopLSN, last)
	}
	srv.Stop() // the restored servers must not depend on it
	raw, _ := rawObject(t, m, bucket, prefix+"/"+catalog.ManifestKey(sum.ID))
	man := decodeManifest(t, raw, sum.ID, identity)
	regular := 0
	for _, f := range man.Files {
		if f.Type == catalog.TypeFile {
			regular++
		}
	}

	// Only credentials: the repository comes from restore_command's flags.
	var creds []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "WALSHIP_") {
			creds = append(creds, kv)
		}
	}
	cases := []struct {
		name string
		args []string
		rows int
	}{
		{"immediate", []string{"--target-immediate"}, 100},
		{"time", []string{"--target-time", afterBatch2}, 300},
		{"lsn", []string{"--target-lsn", lsnAfter3}, 600},
		{"xid", []string{"--target-xid", xid4}, 1000},
		{"xid-exclusive", []string{"--target-xid", xid4, "--exclusive"}, 600},
		{"name", []string{"--target-name", "after-batch-5"}, 1500},
		{"end", []string{"--backup", sum.ID}, 2100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			dir := harness.NewPGDataDir(t)
			newTS := filepath.Join(harness.NewServerDir(t), "ts")
			args := append([]string{"restore", "--pgdata", dir, "--tablespace", tsOID + "=" + newTS, "--jobs", "2", "--json"}, c.args...)
			r := runWalship(t, "/", env, args...)
			if r.code != 0 {
				t.Fatalf("walship %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
			var res struct {
				Backup   catalog.BackupSummary `json:"backup"`
				Timeline uint32                `json:"timeline"`
				Files    int                   `json:"files"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Backup.ID != sum.ID || res.Timeline != 1 || res.Files != regular {
				t.Errorf("restore --json: %+v (%v); want backup %s, timeline 1, %d files:\n%s", res, err, sum.ID, regular, r.stdout)
			}
			if link, err := os.Readlink(filepath.Join(dir, "pg_tblspc", tsOID)); err != nil || link != newTS {
				t.Errorf("pg_tblspc/%s -> %q (%v), want %s", tsOID, link, err, newTS)
			}
			auto, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
			if want := "restore_command = '" + harness.Walship(t) + " wal-fetch %f %p --repo s3://" + bucket + "/" + prefix; !strings.Contains(string(auto), want) || !strings.Contains(string(auto), "--encryption-key-file "+keyFile) {
				t.Errorf("postgresql.auto.conf does not hold %s... --encryption-key-file %s:\n%s", want, keyFile, auto)
			}
			for _, f := range []string{"recovery.signal", "backup_label", "tablespace_map"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("restored directory: %v", err)
				}
			}
			restored := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: creds, Settings: []string{"archive_mode = off"}})
			restored.WaitRecovered(t, 2*time.Minute)
			if got := restored.Psql("SELECT count(*) FROM t"); got != strconv.Itoa(c.rows) {
				t.Errorf("restored to %s: %s rows, want %d", strings.Join(c.args, " "), got, c.rows)
			}
			if got := restored.Psql("SELECT count(*) FROM ts_rows"); got != "777" {
				t.Errorf("table in the relocated tablespace: %s rows, want 777", got)
			}
			// Promoted: a new timeline that takes writes.
			restored.Psql("INSERT INTO t VALUES (99, 1)")
			if got := restored.Psql("SELECT count(*) FROM t"); got != strconv.Itoa(c.rows+1) {
				t.Errorf("after a write: %s rows, want %d", got, c.rows+1)
			}
			log, _ := os.ReadFile(restored.LogPath)
			for _, want := range []string{"restored log file", "selected new timeline ID: 2"} {
				if !strings.Contains(string(log), want) {
					t.Errorf("the restored server's log does not say %q", want)
				}
			}
			restored.Stop()
			t.Logf("restore to %s and recovery took %s", c.name, time.Since(start).Round(time.Millisecond))
		})
	}
}
