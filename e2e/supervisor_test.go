package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/instance/supervisor"
)

// TestSupervisorRealServer: instance/supervisor runs a real PostgreSQL 15:
// it answers queries; a postmaster killed with SIGKILL is restarted (crash
// recovery) and a committed row survives; cancelling Run stops it with a fast
// shutdown within seconds, leaves no postgres process, and the next start
// needs no crash recovery.
func TestSupervisorRealServer(t *testing.T) {
	// Registered first, so it runs after the cleanups that stop the servers.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	srv := harness.NewPostgres(t, harness.PGOptions{NoStart: true})
	logf, err := os.OpenFile(srv.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	readLog := func() string {
		b, _ := os.ReadFile(srv.LogPath)
		return string(b)
	}
	cred := harness.AsServerUser(t, exec.Command("true")).SysProcAttr.Credential
	home := filepath.Dir(srv.SocketDir)
	newSup := func() *supervisor.Supervisor {
		return &supervisor.Supervisor{
			Postgres: filepath.Join(srv.BinDir, "postgres"),
			DataDir:  srv.DataDir,
			Args: []string{"-p", strconv.Itoa(srv.Port), "-k", srv.SocketDir,
				"-c", "listen_addresses=127.0.0.1"},
			Env:          []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LC_ALL=C"},
			Log:          logf,
			Credential:   cred,
			RestartDelay: 200 * time.Millisecond,
			StopTimeout:  20 * time.Second,
		}
	}
	query := func(ctx context.Context, sql string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, srv.ConnString())
		if err != nil {
			return "", err
		}
		defer conn.Close(context.Background())
		var s string
		err = conn.QueryRow(ctx, sql).Scan(&s)
		return s, err
	}
	waitQuery := func(sql, want string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			got, err := query(context.Background(), sql)
			if err == nil && got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %q, %v; want %q\nlog:\n%s", sql, got, err, want, readLog())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	run := func(s *supervisor.Supervisor) (cancel func() error) {
		ctx, c := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- s.Run(ctx) }()
		stopped := false
		stop := func() error {
			if stopped {
				return nil
			}
			stopped = true
			c()
			select {
			case err := <-errc:
				return err
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return within 30 s of the cancel")
				return nil
			}
		}
		t.Cleanup(func() { stop() })
		return stop
	}

	// 1. It starts and answers.
	s := newSup()
	stop := run(s)
	waitQuery("select 1::text", "1")
	st := s.Status()
	if !st.Running || st.Starts != 1 || st.PID == 0 {
		t.Fatalf("status %+v", st)
	}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := pgx.Connect(ctx, srv.ConnString())
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "create table kept (v text); insert into kept values ('committed')")
		conn.Close(context.Background())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	// 2. SIGKILL of the postmaster: restarted, crash recovery, row kept.
	pm := st.PID
	if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		st = s.Status()
		if st.Starts >= 2 && st.Running && st.PID != pm {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: %+v\nlog:\n%s", st, readLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.LastExit == nil || st.LastExit.Signal != syscall.SIGKILL || st.LastExit.PID != pm {
		t.Errorf("last exit %+v", st.LastExit)
	}
	waitQuery("select v from kept", "committed")
	if l := readLog(); !strings.Contains(l, "was interrupted") && !strings.Contains(l, "not properly shut down") {
		t.Errorf("no crash recovery in the log:\n%s", l)
	}
	t.Logf("restarted after SIGKILL: %s; starts %d", st.LastExit, st.Starts)

	// 3. Cancel: fast shutdown, quickly, nothing left behind.
	pm = st.PID
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("stop took %s", took)
	}
	l := readLog()
	if !strings.Contains(l, "received fast shutdown request") || !strings.Contains(l, "database system is shut down") {
		t.Errorf("no fast shutdown in the log:\n%s", l)
	}
	if st := s.Status(); st.Running || st.LastExit.Code != 0 || st.LastExit.Signal != 0 {
		t.Errorf("after stop: %+v exit %+v", st, st.LastExit)
	}
	if out, _ := exec.Command("pgrep", "-f", "postgres -D "+srv.DataDir).Output(); len(out) > 0 {
		t.Errorf("postgres processes remain: %s", out)
	}
	if _, err := os.Stat(filepath.Join(srv.DataDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid after a clean stop: %v", err)
	}
	t.Logf("fast shutdown of pid %d took %s", pm, took.Round(time.Millisecond))

	// A new supervisor starts it again without crash recovery.
	before := len(l)
	s2 := newSup()
	stop2 := run(s2)
	waitQuery("select v from kept", "committed")
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	l = readLog()[before:]
	if !strings.Contains(l, "database system was shut down at") || strings.Contains(l, "was interrupted") {
		t.Errorf("second start, log:\n%s", l)
	}

	// 4. A postmaster that does not react (stopped with SIGSTOP) is escalated
	// to SIGQUIT after StopTimeout and killed with its backends after
	// QuitTimeout.
	s3 := newSup()
	s3.StopTimeout = 500 * time.Millisecond
	s3.QuitTimeout = 500 * time.Millisecond
	stop3 := run(s3)
	waitQuery("select v from kept", "committed")
	pm = s3.Status().PID
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	err = stop3()
	took = time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "killed its process group") {
		t.Errorf("Run: %v", err)
	}
	if took < time.Second || took > 5*time.Second {
		t.Errorf("escalated stop took %s", took)
	}
	if st := s3.Status(); st.Running || st.LastExit.Signal != syscall.SIGKILL {
		t.Errorf("after escalation: %+v exit %+v", st, st.LastExit)
	}
	time.Sleep(200 * time.Millisecond)
	if out, _ := exec.Command("pgrep", "-g", strconv.Itoa(pm)).Output(); len(out) > 0 {
		t.Errorf("processes remain in the server's group: %s", out)
	}
	t.Logf("escalated stop: %v after %s", err, took.Round(time.Millisecond))
}
