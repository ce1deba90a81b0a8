package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PGOptions changes how NewPostgres and NewPostgresFromDir set up a server.
type PGOptions struct {
	// Settings are extra postgresql.conf lines, e.g. "archive_mode = on" or
	// "archive_command = '/path/walship wal-push %p'". They come after the
	// harness's defaults, so they win.
	Settings []string
	// Env is added to the server's environment ("KEY=value"). archive_command
	// and restore_command inherit it: this is how walship gets WALSHIP_* and
	// AWS_* (see MinIO.Env). Postgres.ServerEnv holds it and may be changed
	// before a restart.
	Env []string
	// Port to listen on (127.0.0.1); 0 picks a free one.
	Port int
	// InitdbArgs are extra arguments for initdb (NewPostgres only), e.g.
	// "--wal-segsize=1".
	InitdbArgs []string
	// NoStart leaves the server stopped; call Start.
	NoStart bool
	// RecoverySignal / StandbySignal create recovery.signal / standby.signal
	// in the data directory before the first start (NewPostgresFromDir).
	RecoverySignal bool
	StandbySignal  bool
	// StartTimeout bounds Start (default 2 minutes); StopTimeout bounds the
	// fast shutdown in Stop before it escalates (default 2 minutes).
	StartTimeout time.Duration
	StopTimeout  time.Duration
}

// Postgres is one PostgreSQL 15 server on 127.0.0.1, run as an unprivileged
// user, with its data, socket and log in directories that user owns.
type Postgres struct {
	DataDir   string   // the data directory (PGDATA)
	Port      int      // TCP port on 127.0.0.1
	SocketDir string   // unix_socket_directories
	LogPath   string   // the server's stderr log
	BinDir    string   // PostgreSQL's programs
	ServerEnv []string // added to the server's environment at each Start
	User      string   // database superuser ("postgres")

	t            testing.TB
	base         string
	startTimeout time.Duration
	stopTimeout  time.Duration
	mu           sync.Mutex
	proc         *process
}

// harnessConf is appended to postgresql.conf of every server the harness
// makes: settings for fast, quiet tests on a small machine.
var harnessConf = []string{
	"wal_level = replica",
	"max_wal_size = 1GB",
	"min_wal_size = 80MB",
	"checkpoint_timeout = 1h",
	"fsync = off", // the tests kill processes, not machines
	"shared_buffers = 64MB",
	"max_connections = 50",
	"log_line_prefix = '%m [%p] %b '",
	"log_checkpoints = on",
	"datestyle = 'iso, mdy'",
	"timezone = 'UTC'",
}

const pgSuperuser = "postgres"

var (
	binDirOnce sync.Once
	binDir     string
	binDirErr  error
)

// PGBinDir returns the folder of PostgreSQL 15's programs: $WALSHIP_PG_BINDIR,
// else /usr/lib/postgresql/15/bin (Debian), else `pg_config --bindir`.
func PGBinDir(t testing.TB) string {
	t.Helper()
	binDirOnce.Do(func() {
		candidates := []string{os.Getenv("WALSHIP_PG_BINDIR"), "/usr/lib/postgresql/15/bin"}
		if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
		for _, c := range candidates {
			if c == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(c, "postgres")); err == nil {
				binDir = c
				return
			}
		}
		binDirErr = errors.New("PostgreSQL 15 is not installed (no /usr/lib/postgresql/15/bin/postgres); run make tools (scripts/install-deps.sh)")
	})
	if binDirErr != nil {
		t.Fatalf("harness: %v", binDirErr)
	}
	return binDir
}

// NewPostgres makes a new cluster with initdb (data checksums, trust
// authentication, superuser "postgres") and starts it unless opts.NoStart.
// It is stopped and removed after the test; when the test failed, the tail of
// its log is printed.
func NewPostgres(t testing.TB, opts PGOptions) *Postgres {
	t.Helper()
	p := newPostgres(t, opts)
	p.DataDir = filepath.Join(p.base, "data")
	args := append([]string{"-D", p.DataDir, "-U", pgSuperuser, "--auth=trust", "--data-checksums",
		"--encoding=UTF8", "--locale=C", "--no-sync"}, opts.InitdbArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := p.command(ctx, "initdb", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: initdb: %v\n%s", err, out)
	}
	p.AppendConf(append(append([]string{}, harnessConf...), opts.Settings...)...)
	if !opts.NoStart {
		p.Start()
	}
	return p
}

// NewPostgresFromDir runs a server on an existing data directory, such as
// one from BaseBackup or one that `walship restore` laid down in a directory
// from NewPGDataDir. It gives the directory to the server user (mode 0700),
// appends opts.Settings to its postgresql.conf, creates the signal files that
// opts asks for, and starts it unless opts.NoStart. The server is stopped after
// the test; the directory is not removed unless it came from the harness.
func NewPostgresFromDir(t testing.TB, dir string, opts PGOptions) *Postgres {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("harness: data directory %s: not a directory (%v)", dir, err)
	}
	p := newPostgres(t, opts)
	p.DataDir = dir
	if err := checkTraversable(t, filepath.Dir(dir)); err != nil {
		t.Fatalf("harness: %v (make data directories with NewPGDataDir)", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	for _, sig := range []struct {
		on   bool
		name string
	}{{opts.RecoverySignal, "recovery.signal"}, {opts.StandbySignal, "standby.signal"}} {
		if sig.on {
			if err := os.WriteFile(filepath.Join(dir, sig.name), nil, 0o600); err != nil {
				t.Fatalf("harness: %v", err)
			}
		}
	}
	// postmaster.pid of a copied directory would make the server refuse to start.
	os.Remove(filepath.Join(dir, "postmaster.pid"))
	conf := filepath.Join(dir, "postgresql.conf")
	if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
		p.AppendConf(harnessConf...)
	}
	p.AppendConf(opts.Settings...)
	GiveToServer(t, dir)
	if !opts.NoStart {
		p.Start()
	}
	return p
}

// NewPGDataDir returns a new empty directory (mode 0700, owned by the server
// user) for a data directory that something else fills, e.g.
// `walship restore --pgdata DIR`; then NewPostgresFromDir runs it.
func NewPGDataDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(NewServerDir(t), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	GiveToServer(t, dir)
	return dir
}

func newPostgres(t testing.TB, opts PGOptions) *Postgres {
	t.Helper()
	p := &Postgres{
		BinDir:       PGBinDir(t),
		Port:         opts.Port,
		ServerEnv:    append([]string{}, opts.Env...),
		User:         pgSuperuser,
		t:            t,
		base:         NewServerDir(t),
		startTimeout: opts.StartTimeout,
		stopTimeout:  opts.StopTimeout,
	}
	if p.Port == 0 {
		p.Port = FreePort(t)
	}
	if p.startTimeout == 0 {
		p.startTimeout = 2 * time.Minute
	}
	if p.stopTimeout == 0 {
		p.stopTimeout = 2 * time.Minute
	}
	p.SocketDir = filepath.Join(p.base, "sock")
	p.LogPath = filepath.Join(p.base, "postgres.log")
	if err := os.Mkdir(p.SocketDir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	GiveToServer(t, p.SocketDir)
	t.Cleanup(func() {
		p.stop(30 * time.Second)
		if t.Failed() {
			t.Logf("harness: PostgreSQL log (%s), last lines:\n%s", p.LogPath, logTail(p.LogPath, 60))
		}
	})
	return p
}

// checkTraversable reports whether the server user can reach dir.
func checkTraversable(t testing.TB, dir string) error {
	acct := serverUser(t)
	if acct == nil {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		ok := fi.Mode().Perm()&0o001 != 0 ||
			(int(st.Uid) == acct.Uid && fi.Mode().Perm()&0o100 != 0) ||
			(int(st.Gid) == acct.Gid && fi.Mode().Perm()&0o010 != 0)
		if !ok {
			return fmt.Errorf("user %s cannot enter %s (mode %v)", acct.Name, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// command prepares one of PostgreSQL's programs to run as the server user,
// without the caller's PG* variables.
func (p *Postgres) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.BinDir, prog), args...)
	cmd.Dir = p.base
	cmd.Env = cleanEnv("HOME="+p.base, "PGDATABASE=postgres", "PGCONNECT_TIMEOUT=10")
	cmd.WaitDelay = 5 * time.Second
	return AsServerUser(p.t, cmd)
}

// AppendConf appends lines to postgresql.conf; they take effect at the next
// Start or Reload.
func (p *Postgres) AppendConf(lines ...string) {
	p.t.Helper()
	if len(lines) == 0 {
		return
	}
	conf := filepath.Join(p.DataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatalf("harness: %v", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "\n# walship e2e harness\n%s\n", strings.Join(lines, "\n")); err != nil {
		p.t.Fatalf("harness: %v", err)
	}
	GiveToServer(p.t, conf)
}

// Start starts the server and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	if err := p.TryStart(); err != nil {
		p.t.Fatalf("harness: %v", err)
	}
}

// TryStart is Start that returns an error instead of failing the test, for
// tests that expect a server not to come up. The error includes the log tail.
func (p *Postgres) TryStart() error {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.exited() {
		return nil
	}
	cmd := exec.Command(filepath.Join(p.BinDir, "postgres"), "-D", p.DataDir,
		"-p", strconv.Itoa(p.Port), "-k", p.SocketDir, "-c", "listen_addresses=127.0.0.1")
	cmd.Dir = p.base
	cmd.Env = cleanEnv(append([]string{"HOME=" + p.base}, p.ServerEnv...)...)
	AsServerUser(p.t, cmd)
	proc, err := startProcess("postgres", cmd, p.LogPath)
	if err != nil {
		return err
	}
	p.proc = proc
	start := time.Now()
	err = pollUntil(p.startTimeout, 100*time.Millisecond, func() (bool, error) {
		if proc.exited() {
			return false, fmt.Errorf("postgres exited: %v", proc.err)
		}
		return p.ready(), nil
	})
	if err != nil {
		if !proc.exited() {
			proc.killGroup()
		}
		return fmt.Errorf("PostgreSQL (data %s, port %d) did not start: %v\nlog (%s):\n%s",
			p.DataDir, p.Port, err, p.LogPath, logTail(p.LogPath, 40))
	}
	p.t.Logf("harness: PostgreSQL ready on 127.0.0.1:%d (data %s) after %s", p.Port, p.DataDir, time.Since(start).Round(time.Millisecond))
	return nil
}

// ready reports whether the server accepts connections (pg_isready exit 0).
func (p *Postgres) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := p.command(ctx, "pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", pgSuperuser, "-d", "postgres", "-t", "5")
	return cmd.Run() == nil
}

// Running reports whether the server process is alive.
func (p *Postgres) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc != nil && !p.proc.exited()
}

// Stop shuts the server down with a fast shutdown (SIGINT) and waits; after
// StopTimeout it escalates to an immediate shutdown, then to SIGKILL.
func (p *Postgres) Stop() {
	p.t.Helper()
	p.stop(p.stopTimeout)
}

func (p *Postgres) stop(timeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || p.proc.exited() {
		return
	}
	p.proc.signal(syscall.SIGINT)
	if p.proc.wait(timeout) {
		return
	}
	p.t.Logf("harness: PostgreSQL did not stop within %s; immediate shutdown", timeout)
	p.proc.signal(syscall.SIGQUIT)
	if p.proc.wait(10 * time.Second) {
		return
	}
	p.proc.killGroup()
}

// Kill kills the server and everything it started (backends, a running
// archive_command) with SIGKILL, like a crash, and waits for it to exit.
func (p *Postgres) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || p.proc.exited() {
		return
	}
	p.proc.killGroup()
}

// Reload makes the server re-read its configuration files.
func (p *Postgres) Reload() {
	p.t.Helper()
	p.Psql("SELECT pg_reload_conf()")
}

// TryPsql runs SQL with psql -XAt (unaligned, tuples only; ON_ERROR_STOP) in
// database postgres and returns its output without the trailing newline.
func (p *Postgres) TryPsql(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := p.command(ctx, "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", p.ConnString(), "-c", sql)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return strings.TrimRight(string(out), "\n"), fmt.Errorf("psql %q: %v: %s", sql, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// Psql is TryPsql that fails the test on error.
func (p *Postgres) Psql(sql string) string {
	p.t.Helper()
	out, err := p.TryPsql(sql)
	if err != nil {
		p.t.Fatalf("harness: %v", err)
	}
	return out
}

// ExecAll runs each statement with Psql, in order.
func (p *Postgres) ExecAll(sqls ...string) {
	p.t.Helper()
	for _, s := range sqls {
		p.Psql(s)
	}
}

// Pgbench runs pgbench against database postgres with args (e.g. "-i", "-s",
// "1" or "-T", "10") and returns its output; it fails the test on error.
func (p *Postgres) Pgbench(args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	full := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", pgSuperuser}, args...)
	cmd := p.command(ctx, "pgbench", full...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("harness: pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Env returns libpq's variables for a client of this server
// (PGHOST, PGPORT, PGUSER, PGDATABASE, PGDATA, PGSSLMODE).
func (p *Postgres) Env() []string {
	return []string{
		"PGHOST=127.0.0.1",
		"PGPORT=" + strconv.Itoa(p.Port),
		"PGUSER=" + pgSuperuser,
		"PGDATABASE=postgres",
		"PGDATA=" + p.DataDir,
		"PGSSLMODE=disable",
	}
}

// ConnString returns a libpq/pgx connection string for database postgres.
func (p *Postgres) ConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable", p.Port, pgSuperuser)
}

// SwitchWal writes a WAL record, switches to a new WAL segment and returns
// the name of the segment it completed (which is then ready for archiving).
func (p *Postgres) SwitchWal() string {
	p.t.Helper()
	out := p.Psql("SELECT pg_logical_emit_message(false, 'walship-harness', 'switch') IS NOT NULL; " +
		"SELECT pg_walfile_name(pg_switch_wal())")
	// psql 15 prints the result of each statement; the name is the last line.
	return out[strings.LastIndex(out, "\n")+1:]
}

// WaitArchived waits until PostgreSQL reports that the WAL file walName (or a
// later one on the same or a later timeline) has been archived, that is, that
// archive_command exited 0 for it. It fails the test after timeout, showing
// the archiver's statistics (and, from the cleanup, the server log).
func (p *Postgres) WaitArchived(t testing.TB, walName string, timeout time.Duration) {
	t.Helper()
	var stats string
	err := pollUntil(timeout, 200*time.Millisecond, func() (bool, error) {
		if _, err := os.Stat(filepath.Join(p.DataDir, "pg_wal", "archive_status", walName+".done")); err == nil {
			return true, nil
		}
		out, err := p.TryPsql("SELECT coalesce(last_archived_wal, '') || '|' || archived_count || '|' || failed_count || '|' || coalesce(last_failed_wal, '') FROM pg_stat_archiver")
		if err != nil {
			stats = err.Error()
			return false, nil
		}
		stats = out
		last := strings.SplitN(out, "|", 2)[0]
		return walSegmentName(last) && walSegmentName(walName) && last >= walName, nil
	})
	if err != nil {
		// The server's cleanup prints the tail of its log.
		t.Fatalf("harness: WAL %s not archived: %v (last_archived_wal|archived_count|failed_count|last_failed_wal = %s)",
			walName, err, stats)
	}
}

// walSegmentName reports whether s looks like a WAL segment file name.
func walSegmentName(s string) bool {
	if len(s) != 24 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// WaitRecovered waits until the server has left recovery (pg_is_in_recovery
// is false), e.g. after reaching a recovery target or the end of the archive.
func (p *Postgres) WaitRecovered(t testing.TB, timeout time.Duration) {
	t.Helper()
	var last string
	err := pollUntil(timeout, 200*time.Millisecond, func() (bool, error) {
		if !p.Running() {
			return false, errors.New("server is not running")
		}
		out, err := p.TryPsql("SELECT pg_is_in_recovery()")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = out
		return out == "f", nil
	})
	if err != nil {
		t.Fatalf("harness: server did not leave recovery: %v (last: %s)", err, last)
	}
}

// BaseBackup takes a base backup with pg_basebackup -X none (no WAL: the
// server made from it must fetch WAL with restore_command) into a new
// directory owned by the server user and returns its path, ready for
// NewPostgresFromDir.
func (p *Postgres) BaseBackup(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(NewServerDir(t), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := p.command(ctx, "pg_basebackup", "-D", dir, "-X", "none", "-c", "fast", "--no-sync",
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", pgSuperuser)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: pg_basebackup: %v\n%s", err, out)
	}
	return dir
}
