package supervisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakePostgres writes a shell script that stands in for postgres.
func fakePostgres(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "postgres")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestRestartWithBackoff: a server that keeps exiting is restarted with
// growing delays, each exit is reported with its code, and the arguments and
// output reach the child and Log.
func TestRestartWithBackoff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	var log syncBuf
	var mu sync.Mutex
	var exits []Exit
	s := &Supervisor{
		Postgres:        fakePostgres(t, `echo "args: $*"; echo "cwd: $(pwd)" >&2; exit 3`),
		DataDir:         dir,
		Args:            []string{"-p", "5499"},
		Log:             &log,
		RestartDelay:    50 * time.Millisecond,
		MaxRestartDelay: 200 * time.Millisecond,
		OnExit: func(e Exit) {
			mu.Lock()
			exits = append(exits, e)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, "4 starts", func() bool { return s.Status().Starts >= 4 })
	st := s.Status()
	if st.LastExit == nil || st.LastExit.Code != 3 || st.LastExit.Signal != 0 {
		t.Fatalf("last exit %+v, want code 3", st.LastExit)
	}
	if st.Restarts < 3 {
		t.Errorf("restarts %d", st.Restarts)
	}
	if err := s.Run(ctx); err != ErrRunning {
		t.Errorf("second Run: %v", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(exits)
	mu.Unlock()
	if n < 4 {
		t.Errorf("%d exits reported", n)
	}
	if out := log.String(); !strings.Contains(out, "args: -D "+dir+" -p 5499") || !strings.Contains(out, "cwd: "+dir) {
		t.Errorf("log:\n%s", out)
	}
	if backoff(50*time.Millisecond, 200*time.Millisecond, 0) != 50*time.Millisecond ||
		backoff(50*time.Millisecond, 200*time.Millisecond, 1) != 100*time.Millisecond ||
		backoff(50*time.Millisecond, 200*time.Millisecond, 5) != 200*time.Millisecond {
		t.Error("backoff")
	}
}

// TestRestartAfterSignal: a server killed by a signal is reported with the
// signal and restarted; the status tells the delay before the restart.
func TestRestartAfterSignal(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := &Supervisor{
		Postgres:     fakePostgres(t, `exec sleep 60`),
		DataDir:      t.TempDir(),
		RestartDelay: time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, "running", func() bool { return s.Status().Running })
	pid := s.Status().PID
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 5*time.Second, "exit", func() bool { return s.Status().LastExit != nil })
	st := s.Status()
	if st.LastExit.Signal != syscall.SIGKILL || st.LastExit.PID != pid || st.Running {
		t.Fatalf("status %+v exit %+v", st, st.LastExit)
	}
	if d := st.RestartIn(); d <= 0 || d > time.Second {
		t.Errorf("restart in %s", d)
	}
	waitFor(t, 5*time.Second, "restart", func() bool { return s.Status().Starts == 2 && s.Status().Running })
	// Cancelling while it runs stops it with SIGINT (sleep dies of it).
	start := time.Now()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("stop took %s", time.Since(start))
	}
	if st := s.Status(); st.Running || st.LastExit.Signal != syscall.SIGINT {
		t.Errorf("after stop: %+v exit %+v", st, st.LastExit)
	}
}

// TestCancelWhileWaiting: cancelling during the backoff returns at once.
func TestCancelWhileWaiting(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := &Supervisor{Postgres: fakePostgres(t, `exit 1`), DataDir: t.TempDir(), RestartDelay: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, "exit", func() bool { return s.Status().RestartIn() > 0 })
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return")
	}
	if st := s.Status(); st.Starts != 1 || st.RestartIn() != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestStartError: a missing binary is reported and retried, not fatal.
func TestStartError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := &Supervisor{Postgres: "/nonexistent/postgres", DataDir: t.TempDir(), RestartDelay: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, "start error", func() bool {
		st := s.Status()
		return st.LastExit != nil && st.LastExit.Err != nil && st.Restarts >= 2
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if s.Status().Starts != 0 {
		t.Error("starts counted")
	}
}

// TestEscalation: a server that ignores SIGINT gets SIGQUIT after
// StopTimeout; one that ignores SIGQUIT too has its process group killed
// after QuitTimeout, children included.
func TestEscalation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, tc := range []struct {
		name   string
		script string
		want   string
		sig    syscall.Signal
		code   int
	}{
		{"quit", `trap 'echo got INT' INT; trap 'echo got QUIT; exit 2' QUIT; echo ready; while :; do sleep 0.05; done`, "immediate shutdown (SIGQUIT)", 0, 2},
		{"kill", `trap 'echo got INT' INT; trap 'echo got QUIT' QUIT; sleep 600 & echo "child $!"; echo ready; while :; do sleep 0.05; done`, "killed its process group", syscall.SIGKILL, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuf
			s := &Supervisor{
				Postgres:    fakePostgres(t, tc.script),
				DataDir:     t.TempDir(),
				Log:         &log,
				StopTimeout: 300 * time.Millisecond,
				QuitTimeout: 300 * time.Millisecond,
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error)
			go func() { errc <- s.Run(ctx) }()
			waitFor(t, 5*time.Second, "ready", func() bool { return strings.Contains(log.String(), "ready") })
			start := time.Now()
			cancel()
			err := <-errc
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want %q", err, tc.want)
			}
			if took < 300*time.Millisecond || took > 2*time.Second {
				t.Errorf("stop took %s", took)
			}
			out := log.String()
			if !strings.Contains(out, "got INT") {
				t.Errorf("no SIGINT; log:\n%s", out)
			}
			if tc.name == "kill" {
				var child int
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "child ") {
						child = atoi(strings.TrimPrefix(l, "child "))
					}
				}
				if child == 0 {
					t.Fatalf("log:\n%s", out)
				}
				waitFor(t, 2*time.Second, "child gone", func() bool { return !alive(child) })
			}
			st := s.Status()
			if st.Running || st.LastExit.Code != tc.code || st.LastExit.Signal != tc.sig {
				t.Errorf("status %+v exit %+v", st, st.LastExit)
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range strings.TrimSpace(s) {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}
