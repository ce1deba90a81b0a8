package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
)

// TestRestoreRefusesAndFailsCleanly checks that walship restore refuses bad
// requests before writing anything (two targets, a malformed target, an
// unknown backup, targets outside the recoverable window, a non-empty data
// directory, an unknown tablespace, an unreachable store), and that a
// restore failing midway (a corrupt object, a missing object, a file whose
// checksum differs from the manifest) names the culprit, exits non-zero and
// leaves no data directory behind that looks restorable. Finally, with the
// repository repaired, the same restore succeeds.
func TestRestoreRefusesAndFailsCleanly(t *testing.T) {
	const bucket, prefix = "refuse", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	// About 120 MB: enough to tell streaming from holding the backup in memory.
	srv.ExecAll("CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 1500000) g")
	sum := backupOf(t, srv, env)
	srv.Psql("INSERT INTO t SELECT g, 'after' FROM generate_series(1, 1000) g")
	last := srv.SwitchWal()
	srv.WaitArchived(t, last, time.Minute)
	// --delete-existing never replaces the directory of a running server.
	r := runWalship(t, "/", env, "restore", "--pgdata", srv.DataDir, "--delete-existing")
	if r.code == 0 || !strings.Contains(r.stderr, "belongs to a running PostgreSQL server") {
		t.Errorf("restore over a running server's directory: exit %d, %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(srv.DataDir, "PG_VERSION")); err != nil {
		t.Errorf("the running server's directory was touched: %v", err)
	}
	srv.Stop()

	dir := harness.NewPGDataDir(t)
	// refused runs walship restore and expects it to fail with want in its
	// message, leaving dir exactly as it was.
	refused := func(name, want string, renv []string, args ...string) {
		t.Helper()
		before := listTree(t, dir)
		r := runWalship(t, "/", renv, append([]string{"restore", "--pgdata", dir}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want a failure saying %q", name, r.code, r.stderr, want)
		}
		if after := listTree(t, dir); after != before {
			t.Errorf("%s: the data directory changed:\nbefore: %s\nafter:  %s", name, before, after)
		}
		if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines > 0 {
			t.Errorf("%s: %d lines of errors, want one:\n%s", name, lines+1, r.stderr)
		}
		t.Logf("%s: %s", name, strings.TrimSpace(r.stderr))
	}
	stop := sum.StopTime
	refused("two targets", "--target-time and --target-lsn given together", env,
		"--target-time", stop.Add(time.Second).Format(time.RFC3339), "--target-lsn", "0/5000000")
	refused("malformed LSN", `"5000000" is not a WAL location`, env, "--target-lsn", "5000000")
	refused("malformed time", "is not a time", env, "--target-time", "last tuesday")
	refused("unknown backup", "no complete backup 20200101T000000Z", env, "--backup", "20200101T000000Z")
	refused("time before every backup", "before the recoverable window", env,
		"--target-time", stop.Add(-time.Hour).Format(time.RFC3339Nano))
	refused("time before the chosen backup", "before the end of backup "+sum.ID, env,
		"--backup", sum.ID, "--target-time", stop.Add(-time.Second).Format(time.RFC3339Nano))
	refused("time after the archive", "after the newest archived WAL", env,
		"--target-time", time.Now().Add(time.Hour).Format(time.RFC3339))
	refused("LSN beyond the archive", "beyond the newest archived WAL", env, "--target-lsn", "5/0")
	refused("unknown tablespace", "has no tablespace with that OID", env, "--tablespace", "99999=/tmp/nowhere")
	refused("malformed tablespace", `--tablespace "ts=/tmp/x": use OID=DIR`, env, "--tablespace", "ts=/tmp/x")
	refused("bad target action", `--target-action "stop": use promote, pause or shutdown`, env, "--target-action", "stop")
	refused("timeline that does not exist", "timeline 7 does not continue from backup", env, "--target-timeline", "7")
	noCreds := append(append([]string{}, env...), "WALSHIP_RETRY_BUDGET=2s", "WALSHIP_TIMEOUT=2s")
	m.Stop()
	refused("store down", "127.0.0.1", noCreds, "--target-immediate")
	m.Start()
	keep := filepath.Join(dir, "keep.me")
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("non-empty directory", "is not empty (it holds keep.me)", env)
	if err := os.Remove(keep); err != nil {
		t.Fatal(err)
	}

	// Failures in the middle: the directory is emptied again (or removed
	// when restore created it), never left with backup_label or recovery.signal.
	objKey := prefix + "/" + catalog.DataKey(sum.ID, 0)
	manKey := prefix + "/" + catalog.ManifestKey(sum.ID)
	obj, _ := rawObject(t, m, bucket, objKey)
	man, _ := rawObject(t, m, bucket, manKey)
	if len(obj) < 1<<20 {
		t.Fatalf("object %s is %d bytes; the test wants a big one", objKey, len(obj))
	}
	failed := func(name string, target string, want ...string) {
		t.Helper()
		r := runWalship(t, "/", env, "restore", "--pgdata", target, "--jobs", "2")
		for _, w := range want {
			if r.code == 0 || !strings.Contains(r.stderr, w) {
				t.Errorf("%s: exit %d, stderr %q; want a failure saying %q", name, r.code, r.stderr, w)
			}
		}
		if got := listTree(t, target); got != "" && got != "(missing)" {
			t.Errorf("%s: the failed restore left %s", name, got)
		}
		t.Logf("%s: %s", name, strings.TrimSpace(r.stderr))
	}
	corrupt := bytes.Clone(obj)
	corrupt[len(corrupt)/2] ^= 0xff
	putObject(t, m, bucket, objKey, corrupt)
	failed("corrupt object", dir, catalog.DataKey(sum.ID, 0), "damaged")

	removeObject(t, m, bucket, objKey)
	fresh := filepath.Join(harness.NewServerDir(t), "new")
	failed("missing object", fresh, catalog.DataKey(sum.ID, 0), "missing")
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("the directory that restore created is still there: %v", err)
	}
	putObject(t, m, bucket, objKey, obj)

	mf := decodeManifest(t, man, sum.ID)
	for i, f := range mf.Files {
		if f.Path == "PG_VERSION" {
			mf.Files[i].Checksum = strings.Repeat("0", 32)
		}
	}
	putObject(t, m, bucket, manKey, encodeManifest(t, mf))
	failed("file checksum mismatch", dir, "PG_VERSION does not match the manifest of backup "+sum.ID)

	damaged := bytes.Clone(man)
	damaged[len(damaged)-5] ^= 0xff
	putObject(t, m, bucket, manKey, damaged)
	failed("damaged manifest", dir, "the manifest of backup "+sum.ID, "is damaged")
	putObject(t, m, bucket, manKey, man)

	// Interrupted (SIGINT) in the middle of the download, which a proxy
	// stalls after the first 2 MiB: it removes what it wrote.
	proxy := stallingProxy(t, strings.TrimPrefix(m.Endpoint, "http://"), 2<<20)
	cmd := exec.Command(harness.Walship(t), "restore", "--pgdata", dir, "--jobs", "1")
	cmd.Dir, cmd.Env = "/", append(append([]string{"PATH=/usr/bin:/bin"}, env...), "WALSHIP_S3_ENDPOINT=http://"+proxy.addr)
	var intOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &intOut, &intOut
	harness.AsServerUser(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !proxy.stalled.Load() || listTree(t, dir) == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the restore did not reach the stalled download: %s", intOut.String())
		}
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(intOut.String(), "interrupted; what it had written is removed") {
		t.Errorf("interrupted restore: exit %d: %s", code, intOut.String())
	}
	if got := listTree(t, dir); got != "" {
		t.Errorf("the interrupted restore left %s", got)
	}
	t.Logf("interrupted: %s", strings.TrimSpace(intOut.String()))

	// Repaired: the same restore works, replacing what the directory held
	// with --delete-existing, and recovers every row. Its memory stays far
	// below the size of the backup: objects stream into the files.
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code, maxRSS := runWalshipRSS(t, env, "restore", "--pgdata", dir, "--delete-existing", "--jobs", "2")
	if code != 0 {
		t.Fatalf("restore after the repair: exit %d\n%s", code, out)
	}
	t.Logf("restore of %d MiB (%d objects) used at most %d MiB of memory", mf.Size>>20, len(mf.Objects), maxRSS>>20)
	if mf.Size < 100<<20 || maxRSS > mf.Size/2 {
		t.Errorf("restore of a %d MiB backup peaked at %d MiB of memory; want a backup over 100 MiB restored in less than half its size", mf.Size>>20, maxRSS>>20)
	}
	if _, err := os.Stat(keep); !os.IsNotExist(err) {
		t.Errorf("--delete-existing left %s: %v", keep, err)
	}
	restored := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env, Settings: []string{"archive_mode = off"}})
	restored.WaitRecovered(t, 2*time.Minute)
	if got := restored.Psql("SELECT count(*) FROM t"); got != "1501000" {
		t.Errorf("restored server: %s rows, want 1501000", got)
	}
}

// runWalshipRSS runs walship like runWalship and also returns the peak
// resident memory of the walship process, in bytes. It samples VmHWM in
// /proc, once the process is walship: wait4's maxrss is no use here, as it
// counts the test binary's memory, which the child shares until exec.
func runWalshipRSS(t *testing.T, env []string, args ...string) (output string, code int, peak int64) {
	t.Helper()
	cmd := exec.Command(harness.Walship(t), args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	harness.AsServerUser(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var hwm int64
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if b, err := os.ReadFile(status); err == nil && bytes.Contains(b, []byte("Name:\twalship\n")) {
				var kb int64
				if i := bytes.Index(b, []byte("VmHWM:")); i >= 0 {
					fmt.Sscan(string(b[i+len("VmHWM:"):]), &kb)
				}
				hwm = max(hwm, kb*1024) // a zombie has no VmHWM: keep the last sample
			}
			select {
			case <-done:
				sampled <- hwm
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	peak = <-sampled
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running walship: %v", err)
	}
	if peak == 0 {
		t.Fatal("no memory sample of the walship process")
	}
	return out.String(), cmd.ProcessState.ExitCode(), peak
}

// listTree describes every path under dir ("" when empty, "(missing)" when
// dir does not exist), to compare before and after.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return "(missing)"
	}
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel+":"+strconv.FormatInt(fi.Size(), 10))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

func putObject(t *testing.T, m *harness.MinIO, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Client.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func removeObject(t *testing.T, m *harness.MinIO, bucket, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("remove %s: %v", key, err)
	}
}

// TestRestoreFollowsTimelines restores a backup, lets the restored server
// promote to timeline 2 and archive into the same repository, and then
// restores the same backup twice more: along timeline 1 (--target-timeline
// current) it ends with the rows of timeline 1, along the latest timeline it
// also replays what the promoted server wrote on timeline 2. backup list
// shows a window for each timeline, and a target beyond timeline 2's WAL is
// refused.
func TestRestoreFollowsTimelines(t *testing.T) {
	const bucket, prefix = "timelines", "db"
	m := harness.StartMinIO(t)
	m.MakeBucket(t, bucket)
	env := m.Env(bucket, prefix)
	srv := harness.NewPostgres(t, harness.PGOptions{Settings: archSettings(t), Env: env})
	srv.ExecAll("CREATE TABLE t (i int)", "INSERT INTO t SELECT generate_series(1, 100)")
	backupOf(t, srv, env)
	srv.Psql("INSERT INTO t SELECT generate_series(101, 1000)")
	srv.WaitArchived(t, srv.SwitchWal(), time.Minute)
	srv.Stop()

	restore := func(args ...string) *harness.Postgres {
		t.Helper()
		dir := harness.NewPGDataDir(t)
		r := runWalship(t, "/", env, append([]string{"restore", "--pgdata", dir}, args...)...)
		if r.code != 0 {
			t.Fatalf("restore %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env, Settings: []string{"archive_mode = off"}})
	}
	// The first restored server archives (its postgresql.conf comes from
	// the backup, and restore keeps its archiving when asked to).
	dir := harness.NewPGDataDir(t)
	if r := runWalship(t, "/", env, "restore", "--pgdata", dir, "--archive-mode", "preserve"); r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	promoted := harness.NewPostgresFromDir(t, dir, harness.PGOptions{Env: env})
	promoted.WaitRecovered(t, 2*time.Minute)
	promoted.Psql("INSERT INTO t SELECT generate_series(1001, 1500)")
	seg := promoted.SwitchWal()
	if !strings.HasPrefix(seg, "00000002") {
		t.Fatalf("the promoted server writes %s, not on timeline 2", seg)
	}
	promoted.WaitArchived(t, seg, time.Minute)
	promoted.Stop()

	var listed []struct {
		catalog.BackupSummary
		Windows []catalog.Window `json:"recoverable_windows"`
	}
	r := runWalship(t, "/", env, "backup", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("backup list --json: %v\n%s", err, r.stdout)
	}
	var tl2 catalog.Window
	for _, w := range listed[0].Windows {
		if w.Timeline == 2 {
			tl2 = w
		}
	}
	if len(listed[0].Windows) != 2 || !tl2.Complete || tl2.EndWAL != seg {
		t.Errorf("windows: %+v; want timelines 1 and 2, timeline 2 ending with %s", listed[0].Windows, seg)
	}
	r = runWalship(t, "/", env, "backup", "list")
	if !strings.Contains(r.stdout, seg) {
		t.Errorf("backup list does not show timeline 2's window up to %s:\n%s", seg, r.stdout)
	}
	t.Logf("backup list:\n%s", r.stdout)
	r = runWalship(t, "/", env, "backup", "show", listed[0].ID)
	if !strings.Contains(r.stdout, "recoverable on timeline 2:") || !strings.Contains(r.stdout, seg) {
		t.Errorf("backup show does not show timeline 2's window up to %s:\n%s%s", seg, r.stdout, r.stderr)
	}

	current := restore("--target-timeline", "current")
	current.WaitRecovered(t, 2*time.Minute)
	if got := current.Psql("SELECT count(*) FROM t"); got != "1000" {
		t.Errorf("along timeline 1: %s rows, want 1000", got)
	}
	current.Stop()
	latest := restore()
	latest.WaitRecovered(t, 2*time.Minute)
	if got := latest.Psql("SELECT count(*) FROM t"); got != "1500" {
		t.Errorf("along the latest timeline: %s rows, want 1500", got)
	}
	latest.Stop()

	beyond := runWalship(t, "/", env, "restore", "--pgdata", harness.NewPGDataDir(t), "--target-timeline", "2", "--target-lsn", "1/0")
	if beyond.code == 0 || !strings.Contains(beyond.stderr, "beyond the newest archived WAL: timeline 2") {
		t.Errorf("target beyond timeline 2: exit %d, %s", beyond.code, beyond.stderr)
	}
}

// proxy forwards TCP connections to an address until limit bytes came back
// from it in all; then it stops forwarding (stalled), like a network that
// hangs in the middle of a download.
type proxy struct {
	addr    string
	stalled atomic.Bool
}

func stallingProxy(t *testing.T, target string, limit int64) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: l.Addr().String()}
	var sent atomic.Int64
	var conns sync.WaitGroup
	t.Cleanup(func() { l.Close(); conns.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				clientGone := make(chan struct{})
				go func() { io.Copy(up, c); close(clientGone) }()
				buf := make([]byte, 32<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 && sent.Add(int64(n)) > limit {
						// Hold the connection open, silent, until the client leaves.
						p.stalled.Store(true)
						<-clientGone
						return
					}
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}
