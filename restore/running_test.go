package restore

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeleteExistingRefusesAnsweringServer: replacing a data directory is
// refused while the server its postmaster.pid names answers on its socket
// or its TCP address, though the PID names no process this one can see (a
// server in another PID namespace). A postmaster.pid that nothing answers
// for does not stop it.
func TestDeleteExistingRefusesAnsweringServer(t *testing.T) {
	tmp := t.TempDir()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	port := tcp.Addr().(*net.TCPAddr).Port
	sockDir := filepath.Join(tmp, "sock")
	os.Mkdir(sockDir, 0o700)
	unix, err := net.Listen("unix", filepath.Join(sockDir, fmt.Sprintf(".s.PGSQL.%d", port)))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	free, _ := net.Listen("tcp", "127.0.0.1:0") // a port nothing listens on, once closed
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()

	const noSuchPID = 999999999 // above any pid_max
	for _, c := range []struct {
		name, socketDir, listen string
		port                    int
		want                    string // "" for allowed
	}{
		{"socket answers", sockDir, "", port, "a server answers on " + filepath.Join(sockDir, fmt.Sprintf(".s.PGSQL.%d", port))},
		{"TCP address answers", "", "127.0.0.1", port, fmt.Sprintf("a server answers on 127.0.0.1:%d", port)},
		{"wildcard address answers on loopback", "", "*", port, fmt.Sprintf("a server answers on 127.0.0.1:%d", port)},
		{"nothing answers", sockDir, "127.0.0.1", freePort, ""},
	} {
		dir := filepath.Join(tmp, strings.ReplaceAll(c.name, " ", "-"))
		os.Mkdir(dir, 0o700)
		pidFile := fmt.Sprintf("%d\n%s\n1733600000\n%d\n%s\n%s\n  1234567     98304\nready   \n", noSuchPID, dir, c.port, c.socketDir, c.listen)
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pidFile), 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkTarget(dir, "data directory", true, SettingDeleteExisting, "%s replaces what is there")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v; want the directory accepted", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "belongs to a running PostgreSQL server")):
			t.Errorf("%s: %v; want a refusal saying %q", c.name, err, c.want)
		}
	}
}
