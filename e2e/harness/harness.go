// Package harness runs the real parts that walship's end-to-end tests need:
// the walship binary built from this module, a MinIO server built from the Go
// module proxy, and PostgreSQL 15 from Debian's packages.
//
// Everything it starts is stopped by t.Cleanup, also when a test fails or
// times out (children get SIGKILL when the test binary dies), and every wait
// has a timeout. When a test fails, the tail of each server's log is printed.
//
// PostgreSQL refuses to run as root. When the tests run as root (as CI does),
// the harness runs PostgreSQL and its tools as the "postgres" system user that
// Debian's package creates, and keeps everything that user must reach
// (the walship binary, data directories, file:// repositories made with
// NewServerDir) in directories it can traverse.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MinIOVersion is the MinIO module version that scripts/ensure-minio.sh builds.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// ModuleRoot returns the directory holding this module's go.mod, found by
// walking up from the working directory (a test runs in its package's folder).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.Contains(data, []byte("module github.com/walship/walship")) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.mod of github.com/walship/walship above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("harness: find module root: %v", rootErr)
	}
	return rootDir
}

var (
	walshipOnce sync.Once
	walshipPath string
	walshipErr  error
)

// Walship builds ./cmd/walship once per test binary and returns the path of
// the binary. It lives in a directory every user can read and execute, so
// PostgreSQL (running as the postgres user) can call it from archive_command.
func Walship(t testing.TB) string {
	t.Helper()
	root := ModuleRoot(t)
	walshipOnce.Do(func() {
		sweepStaleBinDirs()
		dir, err := os.MkdirTemp(sharedTempBase(), fmt.Sprintf("walship-e2e-bin-%d-", os.Getpid()))
		if err != nil {
			walshipErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			walshipErr = err
			return
		}
		out := filepath.Join(dir, "walship")
		if walshipErr = goBuild(t, root, "./cmd/walship", out); walshipErr == nil {
			walshipPath = out
		}
	})
	if walshipErr != nil {
		t.Fatalf("harness: %v", walshipErr)
	}
	return walshipPath
}

// goBuild builds the package pkg of the module at root into out, a static
// binary every user can run.
func goBuild(t testing.TB, root, pkg, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return err
	}
	t.Logf("harness: built %s in %s", out, time.Since(start).Round(time.Millisecond))
	return nil
}

// sweepStaleBinDirs removes walship builds left by test binaries that have exited.
func sweepStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(sharedTempBase(), "walship-e2e-bin-*"))
	for _, m := range matches {
		parts := strings.SplitN(filepath.Base(m), "-", 5) // walship e2e bin PID rand
		if len(parts) < 5 {
			continue
		}
		pid, err := strconv.Atoi(parts[3])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(m)
		}
	}
}

// sharedTempBase is where the harness makes directories that the server user
// must reach: $TMPDIR when every user can traverse it, else /tmp.
func sharedTempBase() string {
	base := os.TempDir()
	if os.Geteuid() != 0 {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return base
		}
	}
}

// serverUser is the account PostgreSQL runs as: nil when the tests do not run
// as root (then PostgreSQL runs as the current user).
type serverAccount struct {
	Name     string
	Uid, Gid int
}

var (
	accountOnce sync.Once
	account     *serverAccount
	accountErr  error
)

func serverUser(t testing.TB) *serverAccount {
	t.Helper()
	accountOnce.Do(func() {
		if os.Geteuid() != 0 {
			return
		}
		u, err := user.Lookup("postgres")
		if err != nil {
			accountErr = fmt.Errorf("running as root, and PostgreSQL refuses to run as root, but there is no 'postgres' user to run it as (%v); run scripts/install-deps.sh (make tools)", err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		account = &serverAccount{Name: u.Username, Uid: uid, Gid: gid}
	})
	if accountErr != nil {
		t.Fatalf("harness: %v", accountErr)
	}
	return account
}

// AsServerUser makes cmd run as the user PostgreSQL runs as (the postgres
// system user when the tests run as root; unchanged otherwise), e.g. to run
// `walship restore` the way the server's own restore_command would.
func AsServerUser(t testing.TB, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	acct := serverUser(t)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if acct != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{
			Uid:    uint32(acct.Uid),
			Gid:    uint32(acct.Gid),
			Groups: []uint32{uint32(acct.Gid)},
		}
	}
	return cmd
}

// ServerUserName is the name of the account PostgreSQL runs as.
func ServerUserName(t testing.TB) string {
	t.Helper()
	if acct := serverUser(t); acct != nil {
		return acct.Name
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("harness: current user: %v", err)
	}
	return u.Username
}

// NewServerDir returns a new empty directory that the user PostgreSQL runs as
// owns, inside directories it can traverse: use it for file:// repositories
// that archive_command writes to, or for data directories. It is removed
// after the test.
func NewServerDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(sharedTempBase(), "walship-e2e-")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("WALSHIP_E2E_KEEP") != "" {
			t.Logf("harness: kept %s (WALSHIP_E2E_KEEP is set)", dir)
			return
		}
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	GiveToServer(t, dir)
	return dir
}

// GiveToServer gives path (recursively) to the user PostgreSQL runs as, when
// the tests run as root, so the server and the walship it runs can use it.
func GiveToServer(t testing.TB, path string) {
	t.Helper()
	acct := serverUser(t)
	if acct == nil {
		return
	}
	err := filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, acct.Uid, acct.Gid)
	})
	if err != nil {
		t.Fatalf("harness: chown %s to %s: %v", path, acct.Name, err)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a child server process in its own process group; it is killed
// (with its whole group) when the test binary dies.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
}

func startProcess(name string, cmd *exec.Cmd, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "---- harness: %s starting at %s: %s\n", name, time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	cmd.Stdout = logf
	cmd.Stderr = logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process itself.
func (p *process) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// killGroup sends SIGKILL to the process, its process group and each of its
// children's groups (a server's backends, and a running archive_command),
// and waits until the process and its children are gone: a backend that
// outlives the postmaster by a moment still holds the shared memory, and a
// restart right away would fail with "pre-existing shared memory block is
// still in use" (seen in CI and in make test).
func (p *process) killGroup() {
	pid := p.cmd.Process.Pid
	// PostgreSQL's children call setsid(), so they are not in the
	// postmaster's process group; once orphaned they linger until they
	// notice, holding the shared memory a restart must find free. Kill each
	// child's group too (an archive_command runs in its archiver's).
	groups := append([]int{pid}, childrenOf(pid)...)
	for _, g := range groups {
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
	deadline := time.After(30 * time.Second)
	select {
	case <-p.done:
	case <-deadline:
		return
	}
	for _, g := range groups {
		for running(g) {
			select {
			case <-deadline:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(child); ok && ppid == pid {
			kids = append(kids, child)
		}
	}
	return kids
}

// running says whether pid is alive: a zombie has already released its
// memory, shared memory included, and counts as gone.
func running(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z"
}

// procStat reads a process's state and parent from /proc/PID/stat.
func procStat(pid int) (state string, ppid int, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// The command name is in parentheses and may hold spaces; after it
	// come the state and the parent's pid.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}

// wait waits up to d for the process to exit.
func (p *process) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// logTail returns about the last n lines of a log file.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const max = 16 << 10
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, off, max))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // partial first line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pollUntil calls f every interval until it reports done, returns an error, or
// the timeout expires.
func pollUntil(timeout, interval time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(interval)
	}
}

// cleanEnv is os.Environ without variables that would steer PostgreSQL's
// tools somewhere else (PG*), plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

var (
	kubeOnce sync.Once
	kubeErr  error
)

// WalshipK8s builds ./cmd/walship-k8s next to the Walship binary, where
// `walship operator` looks for it, and returns the walship binary's path.
func WalshipK8s(t testing.TB) string {
	t.Helper()
	walship := Walship(t)
	kubeOnce.Do(func() {
		kubeErr = goBuild(t, ModuleRoot(t), "./cmd/walship-k8s", filepath.Join(filepath.Dir(walship), "walship-k8s"))
	})
	if kubeErr != nil {
		t.Fatalf("harness: %v", kubeErr)
	}
	return walship
}
