package archiver

import (
	"bufio"
	"context"
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

	mu       sync.Mutex
	inFlight map[string]bool
	// retryAt holds, for files whose push failed, when to try again: a
	// store outage or a bad file must not turn into a busy loop of errors.
	retryAt map[string]time.Time
	fails   map[string]int
}

// Run listens and ships until ctx is cancelled.
func (a *Agent) Run(ctx context.Context) error {
	if a.Poll == 0 {
		a.Poll = 200 * time.Millisecond
	}
	a.inFlight = map[string]bool{}
	a.retryAt, a.fails = map[string]time.Time{}, map[string]int{}
	sock := agentsock.Path(a.Shipper.WALDir)
	ln, err := listenUnix(sock)
	if err != nil {
		return err
	}
	defer os.Remove(sock)
	go func() { <-ctx.Done(); ln.Close() }()
	a.Shipper.Log.Info("agent listening", "socket", sock, "repository", a.Shipper.Store.String(), "parallel", a.Shipper.Parallel)

	work := make(chan string)
	var wg sync.WaitGroup
	for range a.Shipper.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				err := a.Shipper.Push(ctx, name)
				a.mu.Lock()
				delete(a.inFlight, name)
				if err != nil && ctx.Err() == nil {
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
		}()
	}
	go a.serve(ctx, ln)

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
			close(work)
			wg.Wait()
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
		a.mu.Unlock()
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

func (a *Agent) serve(ctx context.Context, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go a.handle(ctx, conn)
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
		reply = agentsock.Reply(a.Shipper.Push(ctx, name))
	}
	conn.Write([]byte(reply))
}

// listenUnix binds the socket, replacing a stale one left by a dead agent but
// refusing to start beside a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another walship agent is already serving %s", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return ln, nil
}
