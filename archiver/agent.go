package archiver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/walship/walship/internal/agentsock"
)

// The agent is a resident process beside PostgreSQL. It keeps one warm store
// client, ships every .ready file as soon as it appears with Parallel
// workers, and answers wal-push over a Unix socket in pg_wal/walship, so that
// archive_command becomes a thin client that returns as soon as its file is
// durable (usually: at once). The protocol is in internal/agentsock.

// Agent serves one pg_wal directory.
type Agent struct {
	Shipper *Shipper
	Repo    string        // the repository URL as configured; wal-push must name the same
	Poll    time.Duration // how often archive_status is scanned; default 200ms
	// Explain, when set, rewords the errors the agent answers wal-push
	// with, as the program that asked words them (its names for the
	// settings a message names: see fault.SettingError).
	Explain func(error) error

	mu       sync.Mutex
	inFlight map[string]bool
	// retryAt holds, for files whose push failed, when to try again: a
	// store outage or a bad file must not turn into a busy loop of errors.
	retryAt map[string]time.Time
	fails   map[string]int
	conns   map[net.Conn]bool // connections being served

	running      bool
	pushing      int // pushes running now, for the scan or for wal-push
	lastPushed   string
	lastPushedAt time.Time
	lastErr      error
	lastErrFile  string
	lastErrAt    time.Time
	paused       bool
	idle         chan struct{} // closed when pushing drops to 0, for Pause
}

// ErrPaused answers a wal-push while archiving is paused: PostgreSQL keeps
// the file and asks again later.
var ErrPaused = errors.New("the walship agent has paused archiving (a switchover may be under way); PostgreSQL will retry this file")

// Pause stops the agent from starting any push, for its own scan or for a
// wal-push (answered with ErrPaused), and returns once the pushes under way
// have finished: from then on the agent writes nothing to the repository
// until Resume. If ctx ends first, Pause returns its error and the agent
// stays paused, with pushes possibly still finishing. Pausing before Run, or
// twice, is fine.
func (a *Agent) Pause(ctx context.Context) error {
	a.mu.Lock()
	a.paused = true
	for a.pushing > 0 {
		if a.idle == nil {
			a.idle = make(chan struct{})
		}
		idle := a.idle
		a.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
	}
	a.mu.Unlock()
	return nil
}

// Resume lets a paused agent ship again; its next scan picks up what
// PostgreSQL marked ready meanwhile.
func (a *Agent) Resume() {
	a.mu.Lock()
	a.paused = false
	a.mu.Unlock()
}

// Status is what an agent reports about itself: what an instance manager
// serves and exports as metrics.
type Status struct {
	Running bool // Run is listening and shipping
	Paused  bool // see Pause
	// Queue: files PostgreSQL marked ready that are not shipped yet, those
	// being pushed included. InFlight: pushes running now.
	Queue, InFlight int
	// The file last pushed (or found already stored), and when.
	LastPushed   string
	LastPushedAt time.Time
	// The last push that failed, for the scan or for wal-push: its file,
	// error and time. A later success does not clear it; compare the times.
	LastErrorFile string
	LastError     string
	LastErrorAt   time.Time
	// Repository is the ID of the repository instance whose identity the
	// agent last read and accepted for its configuration, at IdentityReadAt;
	// "" before the first push or when the last check failed (RepositoryError
	// then says why). ConditionalWrites: the store was shown to refuse a
	// second conditional write, so no two writers can overwrite a segment.
	Repository        string
	IdentityReadAt    time.Time
	RepositoryError   string
	ConditionalWrites bool
	// Proven: both of the above hold.
	Proven bool
}

// Status reports the agent's state; safe to call at any time, from any
// goroutine, also before Run or after it returned.
func (a *Agent) Status() Status {
	a.mu.Lock()
	st := Status{
		Running:       a.running,
		Paused:        a.paused,
		InFlight:      a.pushing,
		LastPushed:    a.lastPushed,
		LastPushedAt:  a.lastPushedAt,
		LastErrorFile: a.lastErrFile,
		LastErrorAt:   a.lastErrAt,
	}
	if a.lastErr != nil {
		st.LastError = a.lastErr.Error()
	}
	a.mu.Unlock()
	for _, name := range a.Shipper.Ready() {
		if !a.Shipper.Shipped(name) {
			st.Queue++
		}
	}
	var err error
	st.Repository, st.IdentityReadAt, st.ConditionalWrites, err = a.Shipper.RepositoryProof()
	if err != nil {
		st.RepositoryError = err.Error()
	}
	st.Proven = st.Repository != "" && st.ConditionalWrites
	return st
}

// push pushes name, counting it in flight and recording its outcome.
func (a *Agent) push(ctx context.Context, name string) error {
	a.mu.Lock()
	if a.paused {
		a.mu.Unlock()
		return ErrPaused
	}
	a.pushing++
	a.mu.Unlock()
	err := a.Shipper.Push(ctx, name)
	a.mu.Lock()
	a.pushing--
	if a.pushing == 0 && a.idle != nil {
		close(a.idle)
		a.idle = nil
	}
	switch {
	case err == nil:
		a.lastPushed, a.lastPushedAt = name, time.Now()
	case ctx.Err() == nil:
		a.lastErr, a.lastErrFile, a.lastErrAt = err, name, time.Now()
	}
	a.mu.Unlock()
	return err
}

// Run listens and ships until ctx is cancelled. It returns only once every
// goroutine it started (workers, the accept loop, the connections it was
// serving) has stopped, so a process embedding the agent can run it again
// or exit cleanly. It changes no process-wide state (no working directory).
func (a *Agent) Run(ctx context.Context) error {
	if a.Poll == 0 {
		a.Poll = 200 * time.Millisecond
	}
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("this agent is already running")
	}
	a.running = true
	a.inFlight = map[string]bool{}
	a.retryAt, a.fails = map[string]time.Time{}, map[string]int{}
	a.conns = map[net.Conn]bool{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running = false
		a.mu.Unlock()
	}()
	sock := agentsock.Path(a.Shipper.WALDir)
	ln, err := listenUnix(sock)
	if err != nil {
		return err
	}
	a.Shipper.Log.Info("agent listening", "socket", sock, "repository", a.Shipper.Store.String(), "parallel", a.Shipper.Parallel)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		// Connections still being served: their pushes are cancelled with
		// ctx; closing them ends a handler still waiting for its request.
		a.mu.Lock()
		for c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
	})
	wg.Go(func() { a.serve(ctx, ln, &wg) })

	work := make(chan string)
	defer close(work)
	for range a.Shipper.Parallel {
		wg.Go(func() {
			for name := range work {
				err := a.push(ctx, name)
				a.mu.Lock()
				delete(a.inFlight, name)
				if err != nil && ctx.Err() == nil && !errors.Is(err, ErrPaused) {
					a.fails[name]++
					wait := min(time.Duration(1<<min(a.fails[name], 8))*100*time.Millisecond, 30*time.Second)
					a.retryAt[name] = time.Now().Add(wait)
					a.Shipper.Log.Warn("push failed; will retry", "file", name, "in", wait, "err", err)
				} else {
					delete(a.retryAt, name)
					delete(a.fails, name)
				}
				a.mu.Unlock()
			}
		})
	}

	tick := time.NewTicker(a.Poll)
	defer tick.Stop()
	pruned := time.Now()
	for {
		a.dispatch(ctx, work)
		if time.Since(pruned) > time.Minute {
			a.Shipper.PruneJournal()
			pruned = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// dispatch hands every ready, unshipped, not-in-flight file to a worker,
// blocking while all workers are busy (which bounds memory).
func (a *Agent) dispatch(ctx context.Context, work chan<- string) {
	for _, name := range a.Shipper.Ready() {
		a.mu.Lock()
		busy := a.inFlight[name] || time.Now().Before(a.retryAt[name])
		paused := a.paused
		a.mu.Unlock()
		if paused {
			return
		}
		// Has, not Matches: a stale entry is caught when PostgreSQL asks.
		if busy || a.Shipper.Shipped(name) {
			continue
		}
		a.mu.Lock()
		a.inFlight[name] = true
		a.mu.Unlock()
		select {
		case work <- name:
		case <-ctx.Done():
			return
		}
	}
}

func (a *Agent) serve(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Out of file descriptors, say: wal-push waits or ships itself.
			a.Shipper.Log.Warn("agent: accepting a connection failed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		a.mu.Lock()
		if ctx.Err() != nil {
			a.mu.Unlock()
			conn.Close()
			return
		}
		a.conns[conn] = true
		a.mu.Unlock()
		wg.Go(func() {
			a.handle(ctx, conn)
			a.mu.Lock()
			delete(a.conns, conn)
			a.mu.Unlock()
		})
	}
}

func (a *Agent) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	conn.SetReadDeadline(time.Time{})
	name, repo, ok := agentsock.ParseRequest(line)
	var reply string
	switch {
	case !ok:
		reply = "ERR bad request\n"
	case repo != a.Repo:
		reply = agentsock.Reply(fmt.Errorf("the agent is configured for %s, but this wal-push for %s: the repository, its endpoint or its encryption or repository key settings differ; give both the same settings", a.Repo, repo))
	default:
		// Push shares an upload already running for this name.
		err := a.push(ctx, name)
		if err != nil && a.Explain != nil {
			err = a.Explain(err)
		}
		reply = agentsock.Reply(err)
	}
	conn.Write([]byte(reply))
}

// maxSocketPath is the longest path bind and connect accept for a Unix
// socket: sun_path holds 108 bytes, the terminating NUL included.
const maxSocketPath = 107

// listenUnix binds the socket, replacing a stale one left by a dead agent but
// refusing to start beside a live one.
//
// wal-push reaches the socket by a path relative to the data directory
// (PostgreSQL runs archive_command there), which is always short; the agent
// does not change its working directory (it may run inside another
// process), so when the full path is too long for a socket address it binds
// the very same file through /proc/self/fd/N/agent.sock, N being its open
// directory.
func listenUnix(path string) (net.Listener, error) {
	dir, base := filepath.Split(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	addr := path
	var d *os.File
	if len(path) > maxSocketPath {
		var err error
		if d, err = os.Open(dir); err != nil {
			return nil, err
		}
		addr = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), base)
	}
	ln, err := bindUnix(addr, path)
	if err != nil {
		if d != nil {
			d.Close()
		}
		return nil, err
	}
	if d != nil {
		return &dirListener{Listener: ln, dir: d}, nil
	}
	return ln, nil
}

func bindUnix(addr, path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", addr, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another walship agent is already serving %s", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return ln, nil
}

// dirListener keeps the directory a socket was bound through open until the
// listener, which removes the socket by that name, is closed.
type dirListener struct {
	net.Listener
	dir  *os.File
	once sync.Once
}

func (l *dirListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { l.dir.Close() })
	return err
}
