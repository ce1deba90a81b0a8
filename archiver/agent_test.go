package archiver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/agentsock"
	"github.com/walship/walship/internal/pg"
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
