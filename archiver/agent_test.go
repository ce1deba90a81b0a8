package archiver

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walship/walship/internal/agentsock"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/storage"
)

func TestAgentShipsReadyFilesAndAnswersWalPush(t *testing.T) {
	r := newRig(t)
	if err := agentsock.Ask(r.walDir, r.repo, "000000010000000000000001", time.Second); !errors.Is(err, agentsock.ErrNoAgent) {
		t.Fatalf("no agent running: got %v", err)
	}
	var names []string
	for i := 1; i <= 5; i++ {
		name := pg.Segment{Timeline: 1, Seg: uint32(i)}.Name()
		names = append(names, name)
		r.segment(name, 7, uint64(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	a := &Agent{Shipper: r.shipper(2), Repo: r.repo, Poll: 20 * time.Millisecond}
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Ready files are shipped without anyone asking.
	deadline := time.Now().Add(10 * time.Second)
	for _, name := range names {
		for {
			if _, err := r.stored(name); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent did not ship %s", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// wal-push as a thin client: answered, fast.
	start := time.Now()
	if err := agentsock.Ask(r.walDir, r.repo, names[0], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("answer for a shipped segment took %s", d)
	}
	// A file that is not ready yet is pushed on request.
	extra := pg.Segment{Timeline: 1, Seg: 9}.Name()
	r.segment(extra, 7, 9)
	if err := agentsock.Ask(r.walDir, r.repo, extra, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := r.stored(extra); err != nil {
		t.Fatalf("OK before durable: %v", err)
	}
	// Errors travel back to wal-push.
	r.file("000000010000000000000010", []byte("not wal at all, not wal at all, not wal at all, not wal at all."))
	if err := agentsock.Ask(r.walDir, r.repo, "000000010000000000000010", 5*time.Second); err == nil || !strings.Contains(err.Error(), "not a WAL segment") {
		t.Fatalf("bad file through agent: %v", err)
	}
	// A wal-push configured for another repository is told so.
	if err := agentsock.Ask(r.walDir, "file:///elsewhere", names[0], 5*time.Second); err == nil || !strings.Contains(err.Error(), "wal-push for file:///elsewhere") {
		t.Fatalf("repo mismatch: %v", err)
	}
	// So is one that would encrypt, or authenticate, when the agent does
	// not: the agent must not store plainly what wal-push would encrypt.
	for _, target := range []string{
		agentsock.Target(r.repo, "", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq", "", ""),
		agentsock.Target(r.repo, "", "", "", "/etc/walship/repo.key"),
	} {
		if err := agentsock.Ask(r.walDir, target, names[0], 5*time.Second); err == nil || !strings.Contains(err.Error(), "settings differ") {
			t.Fatalf("an agent without encryption answered a wal-push with it: %v", err)
		}
	}
	// A second agent on the same pg_wal refuses to start.
	b := &Agent{Shipper: r.shipper(1), Repo: r.repo}
	if err := b.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second agent: %v", err)
	}
}

// startAgent runs a on its own goroutine; stop cancels it and returns what
// Run returned.
func startAgent(t *testing.T, a *Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	// Listening once wal-push gets an answer other than "no agent".
	deadline := time.Now().Add(10 * time.Second)
	for errors.Is(agentsock.Ask(a.Shipper.WALDir, "", "x", time.Second), agentsock.ErrNoAgent) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("agent did not start listening: %v", <-done)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// Embedded in another process, the agent must leave nothing running behind
// it: Run returns after its workers, accept loop and connection handlers.
func TestAgentRunReturnsAfterItsGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r := newRig(t)
	for i := 1; i <= 3; i++ {
		r.segment(pg.Segment{Timeline: 1, Seg: uint32(i)}.Name(), 7, uint64(i))
	}
	a := &Agent{Shipper: r.shipper(3), Repo: r.repo, Poll: 10 * time.Millisecond}
	stop := startAgent(t, a)
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("Run twice at once: %v", err)
	}
	if err := agentsock.Ask(r.walDir, r.repo, pg.Segment{Timeline: 1, Seg: 1}.Name(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A client that connected but never sent its request holds a handler.
	c, err := net.Dial("unix", agentsock.Path(r.walDir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s to return", d)
	}
	if _, err := os.Stat(agentsock.Path(r.walDir)); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	// And it can run again in the same process.
	startAgent(t, &Agent{Shipper: r.shipper(1), Repo: r.repo, Poll: 10 * time.Millisecond})()
}

// Unix socket addresses hold 107 bytes; a data directory deeper than that
// must still be served at pg_wal/walship/agent.sock, where wal-push, run by
// PostgreSQL from the data directory, looks for it. Without os.Chdir.
func TestAgentServesALongDataDirectory(t *testing.T) {
	r := newRig(t)
	pgdata := filepath.Join(t.TempDir(), strings.Repeat("a-rather-long-directory-name/", 5), "data")
	r.walDir = filepath.Join(pgdata, "pg_wal")
	os.MkdirAll(filepath.Join(r.walDir, "archive_status"), 0o700)
	if n := len(agentsock.Path(r.walDir)); n <= maxSocketPath {
		t.Fatalf("socket path of %d bytes is not long enough for this test", n)
	}
	wd, _ := os.Getwd()
	a := &Agent{Shipper: r.shipper(1), Repo: r.repo, Poll: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	wait := sync.OnceValue(func() error { return <-done })
	defer func() { cancel(); wait() }()

	t.Chdir(pgdata) // as PostgreSQL runs archive_command
	name := pg.Segment{Timeline: 1, Seg: 1}.Name()
	r.segment(name, 7, 1)
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = agentsock.Ask("pg_wal", r.repo, name, 5*time.Second); !errors.Is(err, agentsock.ErrNoAgent) {
			break
		}
	}
	if err != nil {
		t.Fatalf("wal-push through pg_wal/walship/agent.sock: %v", err)
	}
	if _, err := r.stored(name); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Getwd(); now != pgdata || wd == pgdata {
		t.Fatalf("working directory %s", now)
	}
	// A second agent sees the first through the long path too.
	b := &Agent{Shipper: r.shipper(1), Repo: r.repo}
	if err := b.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second agent: %v", err)
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.walDir, "walship", "agent.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestAgentStatus(t *testing.T) {
	r := newRig(t)
	var names []string
	for i := 1; i <= 3; i++ {
		names = append(names, pg.Segment{Timeline: 1, Seg: uint32(i)}.Name())
		r.segment(names[i-1], 7, uint64(i))
	}
	a := &Agent{Shipper: r.shipper(2), Repo: r.repo, Poll: 10 * time.Millisecond}
	st := a.Status()
	if st.Running || st.Queue != 3 || st.InFlight != 0 || st.LastPushed != "" || st.Proven || st.Repository != "" {
		t.Fatalf("before Run: %+v", st)
	}
	// Safe for concurrent use: poll it all along (go test -race).
	polling, stopPolling := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polling)
		for {
			select {
			case <-stopPolling:
				return
			default:
				a.Status()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer func() { close(stopPolling); <-polling }()

	before := time.Now()
	stop := startAgent(t, a)
	deadline := time.Now().Add(10 * time.Second)
	for st = a.Status(); st.Queue > 0 || st.InFlight > 0; st = a.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("agent did not ship: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !st.Running || !slices.Contains(names, st.LastPushed) || st.LastPushedAt.Before(before) {
		t.Errorf("after shipping: %+v", st)
	}
	if st.Repository == "" || st.IdentityReadAt.Before(before) || !st.ConditionalWrites || !st.Proven || st.RepositoryError != "" {
		t.Errorf("repository not proven: %+v", st)
	}
	if st.LastError != "" {
		t.Errorf("error without a failure: %+v", st)
	}

	bad := "000000010000000000000010"
	r.file(bad, []byte("not wal at all, not wal at all, not wal at all, not wal at all."))
	agentsock.Ask(r.walDir, r.repo, bad, 5*time.Second)
	st = a.Status()
	if st.LastErrorFile != bad || !strings.Contains(st.LastError, "not a WAL segment") || st.LastErrorAt.Before(before) {
		t.Errorf("after a failed push: %+v", st)
	}
	if st.Queue != 1 {
		t.Errorf("the failing file is queued: %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st = a.Status(); st.Running || st.InFlight != 0 {
		t.Errorf("after Run returned: %+v", st)
	}
}

// gatedStore holds the upload of one key until released.
type gatedStore struct {
	storage.Store
	key     string
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, key string, body []byte, opts storage.PutOptions) error {
	if key == g.key {
		close(g.entered)
		<-g.release
	}
	return g.Store.Put(ctx, key, body, opts)
}

// A switchover pauses archiving: Pause returns once the pushes under way
// are done, and until Resume nothing is shipped, by the scan or for wal-push.
func TestAgentPause(t *testing.T) {
	r := newRig(t)
	first, second := pg.Segment{Timeline: 1, Seg: 1}.Name(), pg.Segment{Timeline: 1, Seg: 2}.Name()
	key, _ := catalog.WALKey(first)
	gate := &gatedStore{Store: r.store, key: key, entered: make(chan struct{}), release: make(chan struct{})}
	sh := r.shipper(2)
	sh.Store = gate
	a := &Agent{Shipper: sh, Repo: r.repo, Poll: 10 * time.Millisecond}
	r.segment(first, 7, 1)
	startAgent(t, a)
	<-gate.entered // first is being uploaded

	paused := make(chan error, 1)
	go func() { paused <- a.Pause(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-paused:
		t.Fatalf("Pause returned while a push was under way: %v", err)
	default:
	}
	if st := a.Status(); !st.Paused || st.InFlight != 1 {
		t.Fatalf("pausing: %+v", st)
	}
	// Paused: wal-push is told to come back later.
	r.segment(second, 7, 2)
	if err := agentsock.Ask(r.walDir, r.repo, second, 5*time.Second); err == nil || !strings.Contains(err.Error(), "paused archiving") {
		t.Fatalf("wal-push while paused: %v", err)
	}
	close(gate.release)
	if err := <-paused; err != nil {
		t.Fatal(err)
	}
	if _, err := r.stored(first); err != nil {
		t.Fatalf("the push under way did not complete: %v", err)
	}
	// Nor does the scan ship anything.
	time.Sleep(100 * time.Millisecond)
	if _, err := r.stored(second); err == nil {
		t.Fatal("shipped while paused")
	}
	if st := a.Status(); st.InFlight != 0 || st.Queue != 1 || st.LastError != "" {
		t.Fatalf("paused: %+v", st)
	}
	// Pausing again returns at once, also with a cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Pause(ctx); err != nil {
		t.Fatal(err)
	}

	a.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.stored(second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not shipped after Resume: %+v", a.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := agentsock.Ask(r.walDir, r.repo, second, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.Paused {
		t.Fatalf("resumed: %+v", st)
	}
}
