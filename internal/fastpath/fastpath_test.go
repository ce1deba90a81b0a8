package fastpath

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/agentsock"
	"github.com/walship/walship/internal/spool"
)

func TestFetchOnlyFromALivePrefetchersSpool(t *testing.T) {
	walDir := t.TempDir()
	dest := filepath.Join(walDir, "RECOVERYXLOG")
	name := "000000010000000000000007"
	t.Setenv("WALSHIP_REPO", "s3://bucket/db")
	t.Setenv("WALSHIP_S3_ENDPOINT", "http://127.0.0.1:9000")
	sp := spool.For(dest, spool.Location("s3://bucket/db", "http://127.0.0.1:9000"))
	os.MkdirAll(string(sp), 0o700)
	sp.MarkBoot()
	os.WriteFile(sp.Path(name), []byte("wal"), 0o600)
	if Fetch(name, dest) {
		t.Fatal("answered without a live prefetcher (the full command must start one)")
	}
	unlock, _ := sp.Lock()
	defer unlock()
	if Fetch("00000002.history", dest) {
		t.Fatal("answered for a history file")
	}
	if !Fetch(name, dest) {
		t.Fatal("did not take the spooled segment")
	}
	if b, _ := os.ReadFile(dest); string(b) != "wal" {
		t.Fatalf("dest holds %q", b)
	}
	if Fetch("000000010000000000000008", dest) {
		t.Fatal("answered for a segment that is not spooled")
	}
}

func TestPushAsksTheAgentOnlyWhenConfiguredByEnvironment(t *testing.T) {
	walDir := t.TempDir()
	path := filepath.Join(walDir, "000000010000000000000003")
	os.WriteFile(path, []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(walDir, "walship"), 0o700)
	ln, err := net.Listen("unix", agentsock.Path(walDir))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	asked := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			asked <- line
			c.Write([]byte("OK\n"))
			c.Close()
		}
	}()

	t.Setenv("WALSHIP_REPO", "")
	if answered, _ := Push(path); answered {
		t.Fatal("answered without WALSHIP_REPO")
	}
	t.Setenv("WALSHIP_REPO", "file:///repo")
	t.Setenv("WALSHIP_NO_AGENT", "true")
	if answered, _ := Push(path); answered {
		t.Fatal("answered with WALSHIP_NO_AGENT set")
	}
	t.Setenv("WALSHIP_NO_AGENT", "")
	t.Setenv("WALSHIP_AGENT_TIMEOUT", "soon")
	if answered, _ := Push(path); answered {
		t.Fatal("answered with an invalid WALSHIP_AGENT_TIMEOUT (the full command must report it)")
	}
	t.Setenv("WALSHIP_AGENT_TIMEOUT", "")
	// The settings that decide how objects are protected travel with the
	// request, so an agent configured otherwise refuses.
	t.Setenv("WALSHIP_S3_ENDPOINT", "http://127.0.0.1:9000")
	t.Setenv("WALSHIP_ENCRYPTION_KEY_FILE", "/etc/walship/age.key")
	t.Setenv("WALSHIP_REPO_KEY_FILE", "/etc/walship/repo.key")
	if answered, _ := Push(filepath.Join(walDir, "000000010000000000000004")); answered {
		t.Fatal("answered for a file that does not exist")
	}
	if answered, err := Push(path); !answered || err != nil {
		t.Fatalf("agent's OK: answered %v, %v", answered, err)
	}
	want := agentsock.Target("file:///repo", "http://127.0.0.1:9000", "", "/etc/walship/age.key", "/etc/walship/repo.key")
	if got := <-asked; got != agentsock.Request("000000010000000000000003", want) || want == agentsock.Target("file:///repo", "", "", "", "") {
		t.Fatalf("agent was asked %q", got)
	}
	if len(asked) != 0 {
		t.Fatal("the agent was asked in a case the fast path must leave alone")
	}
}
