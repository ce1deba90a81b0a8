// Package supervisor runs one PostgreSQL server (`postgres -D PGDATA`) as a
// supervised child of the instance manager: it restarts the server when it
// exits while it should run (with exponential backoff), and when it is told to
// stop (the pod's SIGTERM cancels Run's context) it asks for a fast shutdown
// (SIGINT), escalates to an immediate shutdown (SIGQUIT) after StopTimeout and
// to SIGKILL of the whole process group as a last resort.
//
// It never touches postmaster.pid: PostgreSQL itself recognises a stale one
// (its pid is not a live postmaster and no process is attached to the old
// shared memory) and refuses to start beside a live server, which is what
// keeps two postmasters off one data directory. A start that fails because
// the old server's processes still hold the shared memory is simply retried
// after the backoff.
//
// The package uses the standard library only, so the walship binary can
// carry it without Kubernetes code.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Defaults for the zero values of Supervisor's durations.
const (
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = 30 * time.Second
	DefaultStableAfter     = time.Minute
	DefaultStopTimeout     = 25 * time.Second
	DefaultQuitTimeout     = 5 * time.Second
)

// Supervisor runs `Postgres -D DataDir Args...`. Set the fields before Run;
// do not change them while it runs.
type Supervisor struct {
	Postgres string   // path of the postgres binary
	DataDir  string   // the data directory (PGDATA)
	Args     []string // more arguments after -D DataDir, e.g. "-c", "config_file=..."
	// Env is the server's whole environment (archive_command and
	// restore_command inherit it); nil means the supervisor's own.
	Env []string
	// Dir is the server's working directory; "" means DataDir.
	Dir string
	// Log receives the server's stdout and stderr; nil discards them.
	Log io.Writer
	// Credential, when set, runs the server as that user and group
	// (PostgreSQL refuses to run as root).
	Credential *syscall.Credential

	// RestartDelay is the first wait before a restart (default 1 s); each
	// further restart doubles it up to MaxRestartDelay (default 30 s). A
	// server that stayed up StableAfter (default 1 min) starts the count anew.
	RestartDelay    time.Duration
	MaxRestartDelay time.Duration
	StableAfter     time.Duration
	// StopTimeout bounds the fast shutdown (SIGINT) before the supervisor
	// asks for an immediate shutdown (SIGQUIT) (default 25 s; set it to the
	// pod's grace period minus a margin). QuitTimeout bounds the immediate
	// shutdown before SIGKILL of the process group (default 5 s).
	StopTimeout time.Duration
	QuitTimeout time.Duration

	// OnStart, when set, is called after each start with the server's pid;
	// OnExit after each exit (also the last one). They run on Run's
	// goroutine: keep them short.
	OnStart func(pid int)
	OnExit  func(Exit)

	mu      sync.Mutex
	running bool // Run is active
	st      Status
}

// Exit describes how one run of the server ended.
type Exit struct {
	PID    int
	Code   int            // exit code; -1 when killed by a signal or not started
	Signal syscall.Signal // the signal that killed it, or 0
	Time   time.Time      // when it ended
	Uptime time.Duration  // how long it ran
	Err    error          // the start error, when it could not be started
}

func (e Exit) String() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("could not start: %v", e.Err)
	case e.Signal != 0:
		return fmt.Sprintf("pid %d killed by signal %d (%v) after %s", e.PID, int(e.Signal), e.Signal, e.Uptime.Round(time.Millisecond))
	default:
		return fmt.Sprintf("pid %d exited with code %d after %s", e.PID, e.Code, e.Uptime.Round(time.Millisecond))
	}
}

// Status is a snapshot of the supervisor's state.
type Status struct {
	Running   bool      // a server process is alive
	PID       int       // its pid (0 when not running)
	Since     time.Time // when it was started
	Starts    int       // how many times a server was started
	LastExit  *Exit     // how the last run ended, nil before the first exit
	Restarts  int       // consecutive restarts since the server last stayed up StableAfter
	RestartAt time.Time // when the next start is due while waiting to restart, else zero
	Stopping  bool      // Run's context was cancelled and the server is being stopped
}

// RestartIn is how long until the next start while the supervisor waits to
// restart the server, else 0.
func (s Status) RestartIn() time.Duration {
	if s.RestartAt.IsZero() {
		return 0
	}
	if d := time.Until(s.RestartAt); d > 0 {
		return d
	}
	return 0
}

// Status returns the current state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if st.LastExit != nil {
		e := *st.LastExit
		st.LastExit = &e
	}
	return st
}

// ErrRunning is returned by Run when the Supervisor already runs.
var ErrRunning = errors.New("supervisor: already running")

// Run starts the server and keeps it running until ctx is cancelled; then it
// stops it (SIGINT, after StopTimeout SIGQUIT, after QuitTimeout SIGKILL of
// the process group) and returns once the server has exited. It returns nil
// when the server stopped with the fast shutdown, and an error that says so
// when it had to escalate.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return ErrRunning
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.st.Stopping = false
		s.st.RestartAt = time.Time{}
		s.mu.Unlock()
	}()

	// One pipe carries the output of every run to Log, so the server's
	// writes never block on a Go writer and Wait never waits for a copy.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		w := s.Log
		if w == nil {
			w = io.Discard
		}
		io.Copy(w, pr)
	}()
	defer func() {
		pw.Close()
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
			// Something outside the process group still holds the pipe.
		}
		pr.Close()
		<-copied
	}()

	restarts := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		exit, stopErr := s.runOnce(ctx, pw)
		if ctx.Err() != nil {
			return stopErr
		}
		if exit.Err == nil && exit.Uptime >= dflt(s.StableAfter, DefaultStableAfter) {
			restarts = 0
		}
		delay := backoff(dflt(s.RestartDelay, DefaultRestartDelay), dflt(s.MaxRestartDelay, DefaultMaxRestartDelay), restarts)
		restarts++
		s.mu.Lock()
		s.st.Restarts = restarts
		s.st.RestartAt = time.Now().Add(delay)
		s.mu.Unlock()
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		s.mu.Lock()
		s.st.RestartAt = time.Time{}
		s.mu.Unlock()
	}
}

// runOnce starts the server and waits until it exits; when ctx is cancelled
// meanwhile it stops it. stopErr reports an escalation.
func (s *Supervisor) runOnce(ctx context.Context, out *os.File) (exit Exit, stopErr error) {
	args := append([]string{"-D", s.DataDir}, s.Args...)
	cmd := exec.Command(s.Postgres, args...)
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	if cmd.Dir == "" {
		cmd.Dir = s.DataDir
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.Credential}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		exit = Exit{Code: -1, Time: time.Now(), Err: err}
		s.recordExit(exit)
		return exit, nil
	}
	pid := cmd.Process.Pid
	s.mu.Lock()
	s.st.Running = true
	s.st.PID = pid
	s.st.Since = start
	s.st.Starts++
	s.mu.Unlock()
	if s.OnStart != nil {
		s.OnStart(pid)
	}

	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		stopErr = s.stop(cmd.Process, done)
	}
	// The postmaster is gone; whatever it left in its process group
	// (backends after a crash, an archive_command) holds the old shared
	// memory and would keep the next server from starting.
	syscall.Kill(-pid, syscall.SIGKILL)

	exit = Exit{PID: pid, Code: -1, Time: time.Now(), Uptime: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		exit.Code = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			exit.Signal = ws.Signal()
		}
	}
	s.recordExit(exit)
	return exit, stopErr
}

// stop asks the server to stop and escalates; it returns once it exited.
func (s *Supervisor) stop(p *os.Process, done <-chan struct{}) error {
	s.mu.Lock()
	s.st.Stopping = true
	s.mu.Unlock()
	stopTimeout := dflt(s.StopTimeout, DefaultStopTimeout)
	quitTimeout := dflt(s.QuitTimeout, DefaultQuitTimeout)

	p.Signal(syscall.SIGINT) // fast shutdown
	if waitDone(done, stopTimeout) {
		return nil
	}
	p.Signal(syscall.SIGQUIT) // immediate shutdown
	if waitDone(done, quitTimeout) {
		return fmt.Errorf("supervisor: postgres (pid %d) did not stop within %s of the fast shutdown request; it stopped after an immediate shutdown (SIGQUIT)", p.Pid, stopTimeout)
	}
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	<-done
	return fmt.Errorf("supervisor: postgres (pid %d) did not stop within %s of the fast shutdown request nor %s of an immediate shutdown; killed its process group", p.Pid, stopTimeout, quitTimeout)
}

func (s *Supervisor) recordExit(e Exit) {
	s.mu.Lock()
	s.st.Running = false
	s.st.PID = 0
	s.st.LastExit = &e
	s.mu.Unlock()
	if s.OnExit != nil {
		s.OnExit(e)
	}
}

func waitDone(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// backoff is first·2^n, at most max.
func backoff(first, max time.Duration, n int) time.Duration {
	d := first
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

func dflt(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
