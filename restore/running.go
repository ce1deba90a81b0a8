package restore

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dialTimeout bounds each attempt to reach the server postmaster.pid names.
const dialTimeout = time.Second

// runningServer says why a PostgreSQL server seems to run on the data
// directory dir, from its postmaster.pid, or "" when none does. The PID
// alone is not enough: a server in another PID namespace (a container, a
// pod sharing the volume) has a PID that means nothing here, or names an
// unrelated process. So a server that answers on the Unix socket or the
// TCP address the file records counts as running too.
func runningServer(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return ""
	}
	// Lines: PID, data directory, start time, port, socket directory,
	// listen address, shared memory key, status.
	lines := strings.Split(string(b), "\n")
	line := func(n int) string {
		if len(lines) < n {
			return ""
		}
		return strings.TrimSpace(lines[n-1])
	}
	pid, err := strconv.Atoi(line(1))
	if err == nil && pid > 0 {
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			return fmt.Sprintf("postmaster.pid, process %d", pid)
		}
	}
	port, err := strconv.Atoi(line(4))
	if err != nil || port <= 0 || port > 65535 {
		return ""
	}
	for _, a := range serverAddresses(line(5), line(6), port) {
		if answers(a) {
			return fmt.Sprintf("postmaster.pid names process %s, which is not running here, but a server answers on %s, the %s it names; it may run in another PID namespace", line(1), a.addr, a.what)
		}
	}
	return ""
}

type serverAddress struct {
	network, addr, what string
}

// serverAddresses are where the server of a postmaster.pid listens: its
// Unix socket, and its first TCP address (a wildcard reached through the
// loopback interface).
func serverAddresses(socketDir, listen string, port int) []serverAddress {
	var out []serverAddress
	if socketDir != "" {
		out = append(out, serverAddress{"unix", filepath.Join(socketDir, ".s.PGSQL."+strconv.Itoa(port)), "socket"})
	}
	host, _, _ := strings.Cut(listen, ",")
	switch host = strings.TrimSpace(host); host {
	case "":
		return out
	case "*", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return append(out, serverAddress{"tcp", net.JoinHostPort(host, strconv.Itoa(port)), "address"})
}

// answers reports whether something accepts a connection at a.
func answers(a serverAddress) bool {
	c, err := net.DialTimeout(a.network, a.addr, dialTimeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
