package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/internal/agentsock"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/pg"
)

// `walship agent` serves a data directory whose socket path is too long for
// a socket address, without changing its working directory; wal-push, run
// by PostgreSQL from the data directory, reaches it at
// pg_wal/walship/agent.sock, and a relative key file means the same file to
// both.
func TestAgentCommandWithALongDataDirectory(t *testing.T) {
	base := t.TempDir()
	pgdata := filepath.Join(base, strings.Repeat("long-directory-name-", 6), "data")
	walDir := filepath.Join(pgdata, "pg_wal")
	if err := os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pgdata, "PG_VERSION"), []byte("17\n"), 0o600)
	os.WriteFile(filepath.Join(pgdata, "repo.key"), []byte(codec.NewRepositoryKey()), 0o600)
	sock := agentsock.Path(walDir)
	if len(sock) < 108 {
		t.Fatalf("%s is short enough for a socket address", sock)
	}
	repo := "file://" + filepath.Join(base, "repo")
	wd, _ := os.Getwd()

	root := newRoot()
	root.SetArgs([]string{"agent", "--pgdata", pgdata, "--repo", repo, "--repo-key-file", "repo.key", "--parallel", "1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	wait := sync.OnceValue(func() error { return <-done })
	defer func() { cancel(); wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-done:
			done <- err // for wait
			t.Fatalf("agent exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no socket")
		}
	}
	if now, _ := os.Getwd(); now != wd {
		t.Fatalf("the agent changed the working directory to %s", now)
	}

	t.Chdir(pgdata) // as PostgreSQL runs archive_command
	name := pg.Segment{Timeline: 1, Seg: 1}.Name()
	os.WriteFile(filepath.Join("pg_wal", name), pg.FakeSegment(name, 7, 1<<20, 1), 0o600)
	if err := agentsock.Ask("pg_wal", agentsock.Target(repo, "", "", "", "repo.key"), name, 10*time.Second); err != nil {
		t.Fatalf("wal-push through the agent: %v", err)
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}
