// Package agentsock is the wire between `walship wal-push` and a running
// `walship agent`: a Unix socket in pg_wal/walship and one request per
// connection:
//
//	client: PUSH <file name> <repository>\n
//	agent:  OK\n  or  ERR <message>\n
//
// walship's fast path (internal/fastpath) asks the agent while the program
// is still starting; see Ask for what that demands of the imports.
package agentsock

import (
	"errors"
	"syscall"
	"time"

	"github.com/walship/walship/internal/shorthash"
	"github.com/walship/walship/internal/walshipdir"
)

// Path is where the agent serving pg_wal directory walDir listens.
func Path(walDir string) string { return walshipdir.AgentSocket(walDir) }

// ErrNoAgent: no agent is listening; the caller ships the file itself.
var ErrNoAgent = errors.New("no agent")

// Ask asks the agent serving walDir to push name to repo and waits up to
// timeout for the answer: nil once the file is durable, the agent's error
// otherwise, and ErrNoAgent when no agent listens.
//
// It talks through raw socket calls rather than package net, and this
// package imports nothing that needs initialising after os (no net, fmt,
// bytes, path/filepath, nor strings, which waits for unicode's tables): Go then initialises it, and the fast
// path, right after os instead of after a hundred other packages, about
// 11 ms later (measured with GODEBUG=inittrace=1).
func Ask(walDir, repo, name string, timeout time.Duration) error {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return ErrNoAgent
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: Path(walDir)}); err != nil {
		return ErrNoAgent
	}
	if _, err := syscall.Write(fd, []byte(Request(name, repo))); err != nil {
		return ErrNoAgent
	}
	var reply []byte
	buf := make([]byte, 4096)
	for len(reply) == 0 || reply[len(reply)-1] != '\n' {
		n, err := syscall.Read(fd, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return errors.New("the walship agent did not answer for " + name + " within " + timeout.String())
		case err != nil:
			return errors.New("the walship agent did not answer for " + name + ": " + err.Error())
		case n == 0:
			return errors.New("the walship agent closed the connection without answering for " + name)
		}
		reply = append(reply, buf[:n]...)
	}
	answer := string(reply[:len(reply)-1])
	switch {
	case answer == "OK":
		return nil
	case len(answer) > 4 && answer[:4] == "ERR ":
		return errors.New(answer[4:])
	}
	return errors.New("the walship agent answered " + answer)
}

// Target names a repository together with the settings that decide how its
// objects are protected (endpoint, encryption recipients and key file,
// repository key file): the agent serves only wal-push calls configured as
// it is. The settings are reduced to a hash, so no path appears on the wire.
func Target(repo, endpoint, recipients, keyFile, repoKeyFile string) string {
	return repo + " settings-" + shorthash.Of(endpoint, recipients, keyFile, repoKeyFile)
}

// Request is the line a client sends.
func Request(name, repo string) string { return "PUSH " + name + " " + repo + "\n" }

// ParseRequest reads a client's line.
func ParseRequest(line string) (name, repo string, ok bool) {
	line, _ = cutByte(line, '\n')
	verb, rest := cutByte(line, ' ')
	name, repo = cutByte(rest, ' ')
	return name, repo, verb == "PUSH" && name != "" && repo != ""
}

// Reply is the agent's answer to a request that ended with err: one line.
func Reply(err error) string {
	if err == nil {
		return "OK\n"
	}
	msg := []byte(err.Error())
	for i, c := range msg {
		if c == '\n' {
			msg[i] = ' '
		}
	}
	return "ERR " + string(msg) + "\n"
}

// cutByte is strings.Cut for one byte (see Ask for why not strings).
func cutByte(s string, sep byte) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
