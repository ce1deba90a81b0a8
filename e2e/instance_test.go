package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
)

// instanceRun is one `walship instance run` as the server's OS user, with
// its output in a log file.
type instanceRun struct {
	t       *testing.T
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

type instanceEnv struct {
	base, pgdata, sock string
	port               int
	args               []string
}

func newInstanceEnv(t *testing.T) *instanceEnv {
	t.Helper()
	base := harness.NewServerDir(t)
	e := &instanceEnv{base: base, pgdata: filepath.Join(base, "pgdata"), sock: filepath.Join(base, "sock"), port: harness.FreePort(t)}
	for _, d := range []string{e.sock, filepath.Join(base, "tls")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		harness.GiveToServer(t, d)
	}
	tls := writeTestPKI(t, filepath.Join(base, "tls"))
	e.args = []string{"instance", "run", "--cluster", "inst", "--instance", "inst-1",
		"--bindir", harness.PGBinDir(t), "--port", strconv.Itoa(e.port), "--socket-dir", e.sock,
		"--tls-server-cert", tls.ServerCert, "--tls-server-key", tls.ServerKey, "--tls-client-ca", tls.ClientCA,
		"--stop-timeout", "20s"}
	return e
}

func (e *instanceEnv) start(t *testing.T, extra ...string) *instanceRun {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "instance.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := harness.AsServerUser(t, exec.Command(harness.Walship(t), append(append([]string{}, e.args...), extra...)...))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.base, "LC_ALL=C", "PGDATA=" + e.pgdata,
		`WALSHIP_PG_PARAMETERS={"work_mem":"8MB"}`, `WALSHIP_PG_HBA=["local all all peer"]`}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &instanceRun{t: t, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(40 * time.Second):
				cmd.Process.Kill()
			}
		}
	})
	return r
}

func (r *instanceRun) log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// stop sends SIGTERM and wants exit 0 within 15 s.
func (r *instanceRun) stop() {
	r.t.Helper()
	start := time.Now()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		r.t.Fatalf("walship instance run did not exit within 15 s of SIGTERM\nlog:\n%s", r.log())
	}
	if r.err != nil {
		r.t.Fatalf("walship instance run: %v after SIGTERM\nlog:\n%s", r.err, r.log())
	}
	r.t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
}

// psql runs sql in db over the socket as postgres (peer authentication).
func (e *instanceEnv) psql(t *testing.T, db, sql string) (string, error) {
	t.Helper()
	cmd := harness.AsServerUser(t, exec.Command(filepath.Join(harness.PGBinDir(t), "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
		"-h", e.sock, "-p", strconv.Itoa(e.port), "-U", "postgres", "-d", db, "-c", sql))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.base, "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (e *instanceEnv) waitReady(t *testing.T, r *instanceRun) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		out, err := e.psql(t, "postgres", "select 1")
		if err == nil && out == "1" {
			return
		}
		select {
		case <-r.done:
			t.Fatalf("walship instance run exited: %v\nlog:\n%s", r.err, r.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %s %v\nlog:\n%s", out, err, r.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *instanceEnv) want(t *testing.T, db, sql, want string) {
	t.Helper()
	got, err := e.psql(t, db, sql)
	if err != nil || got != want {
		t.Errorf("%s in %s: got %q, %v; want %q", sql, db, got, err, want)
	}
}

// TestInstanceRunInitdb: `walship instance run` bootstraps a primary with
// initdb (database app owned by app, UTF8, C; streaming_replica; the
// post-init SQL), serves over TLS, stops with a fast shutdown on SIGTERM and
// exits 0, and a second run keeps the data directory.
func TestInstanceRunInitdb(t *testing.T) {
	e := newInstanceEnv(t)
	r := e.start(t, "--database", "app", "--owner", "app", "--encoding", "UTF8", "--locale-collate", "C", "--locale-ctype", "C",
		"--data-checksums", "--post-init-sql", "create role from_post_init nologin",
		"--post-init-application-sql", "create table app_post_init (v int)")
	e.waitReady(t, r)
	e.want(t, "postgres", "select pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype from pg_database where datname = 'app'", "app UTF8 C C")
	e.want(t, "postgres", "select rolreplication and rolcanlogin from pg_roles where rolname = 'streaming_replica'", "t")
	e.want(t, "postgres", "select rolcanlogin from pg_roles where rolname = 'app'", "t")
	e.want(t, "postgres", "select count(*) from pg_roles where rolname = 'from_post_init'", "1")
	e.want(t, "app", "select count(*) from app_post_init", "0")
	e.want(t, "postgres", "show ssl", "on")
	e.want(t, "postgres", "show data_checksums", "on")
	e.want(t, "postgres", "show work_mem", "8MB")
	e.want(t, "postgres", "show listen_addresses", "*")
	if _, err := e.psql(t, "app", "create table marker (v text); insert into marker values ('kept')"); err != nil {
		t.Fatal(err)
	}
	r.stop()
	if l := r.log(); !strings.Contains(l, "fast shutdown") || !strings.Contains(l, "initdb into") {
		t.Errorf("no initdb or no fast shutdown in the log:\n%s", l)
	}
	if _, err := os.Stat(e.pgdata + ".initdb"); !os.IsNotExist(err) {
		t.Errorf("%s.initdb is left: %v", e.pgdata, err)
	}

	r = e.start(t, "--post-init-sql", "create role second_run nologin")
	e.waitReady(t, r)
	e.want(t, "app", "select v from marker", "kept")
	e.want(t, "postgres", "select count(*) from pg_roles where rolname = 'second_run'", "0")
	r.stop()
	if l := r.log(); strings.Contains(l, "initdb into") || !strings.Contains(l, "no initdb") {
		t.Errorf("the second run ran initdb or did not say it skipped it:\n%s", l)
	}
}

// TestInstanceRunCrashDuringBootstrap: a walship killed with SIGKILL in the
// middle of the post-init steps leaves no data directory; the next run
// bootstraps from scratch and completes.
func TestInstanceRunCrashDuringBootstrap(t *testing.T) {
	e := newInstanceEnv(t)
	r := e.start(t, "--post-init-sql", "select pg_sleep(5)")
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(r.log(), "postInitSQL 1") {
		if time.Now().After(deadline) {
			t.Fatalf("the bootstrap did not reach the post-init SQL\nlog:\n%s", r.log())
		}
		select {
		case <-r.done:
			t.Fatalf("exited: %v\nlog:\n%s", r.err, r.log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(time.Second)
	r.cmd.Process.Kill()
	<-r.done
	if _, err := os.Stat(e.pgdata); !os.IsNotExist(err) {
		t.Fatalf("after the kill, %s exists (%v)", e.pgdata, err)
	}
	// The bootstrap's server dies with walship (and its backends with it).
	if b, err := os.ReadFile(filepath.Join(e.pgdata+".initdb", "postmaster.pid")); err == nil {
		pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
		deadline := time.Now().Add(10 * time.Second)
		for pid > 0 && syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("the bootstrap's postmaster %d outlived walship", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("killed during bootstrap:\n%s", r.log())

	r = e.start(t, "--post-init-sql", "create role after_crash nologin")
	e.waitReady(t, r)
	e.want(t, "postgres", "select count(*) from pg_roles where rolname in ('after_crash', 'app', 'streaming_replica')", "3")
	e.want(t, "postgres", "select count(*) from pg_database where datname = 'app'", "1")
	r.stop()
	if _, err := os.Stat(e.pgdata + ".initdb"); !os.IsNotExist(err) {
		t.Errorf("%s.initdb is left: %v", e.pgdata, err)
	}
}
