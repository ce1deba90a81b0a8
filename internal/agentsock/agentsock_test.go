package agentsock

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAgent answers every connection on walDir's socket with answer(request).
func fakeAgent(t *testing.T, walDir string, answer func(req string) string) {
	t.Helper()
	os.MkdirAll(filepath.Join(walDir, "walship"), 0o700)
	ln, err := net.Listen("unix", Path(walDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			if reply := answer(line); reply != "" {
				c.Write([]byte(reply))
			}
			c.Close()
		}
	}()
}

func TestAsk(t *testing.T) {
	walDir := t.TempDir()
	if err := Ask(walDir, "file:///r", "000000010000000000000001", time.Second); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("no agent: %v", err)
	}
	fakeAgent(t, walDir, func(req string) string {
		name, repo, ok := ParseRequest(req)
		switch {
		case !ok || repo != "file:///r":
			return "ERR bad request\n"
		case name == "000000010000000000000001":
			return Reply(nil)
		case name == "000000010000000000000002":
			return Reply(errors.New("store says no\nsecond line"))
		}
		return "" // hang up without answering
	})
	if err := Ask(walDir, "file:///r", "000000010000000000000001", time.Second); err != nil {
		t.Fatalf("OK answer: %v", err)
	}
	err := Ask(walDir, "file:///r", "000000010000000000000002", time.Second)
	if err == nil || err.Error() != "store says no second line" {
		t.Fatalf("ERR answer: %v", err)
	}
	err = Ask(walDir, "file:///r", "000000010000000000000003", time.Second)
	if err == nil || errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "without answering") {
		t.Fatalf("hang-up: %v", err)
	}
}

func TestAskTimesOut(t *testing.T) {
	walDir := t.TempDir()
	block := make(chan struct{})
	defer close(block)
	fakeAgent(t, walDir, func(string) string { <-block; return "" })
	start := time.Now()
	err := Ask(walDir, "file:///r", "000000010000000000000001", 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "within 200ms") || time.Since(start) > 2*time.Second {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
}

func TestParseRequest(t *testing.T) {
	for line, want := range map[string][3]string{
		Request("000000010000000000000001", "s3://b/p q"): {"000000010000000000000001", "s3://b/p q", "true"},
		"PUSH x\n":     {"", "", "false"},
		"PULL a b\n":   {"", "", "false"},
		"PUSH  repo\n": {"", "", "false"},
	} {
		name, repo, ok := ParseRequest(line)
		if ok != (want[2] == "true") || (ok && (name != want[0] || repo != want[1])) {
			t.Errorf("%q: %q %q %v", line, name, repo, ok)
		}
	}
}
