package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/instance/pgconf"
)

// TestPGConfRealServer: walship.conf and pg_hba.conf as instance/pgconf
// renders them (for a primary with archiving and for a standby's settings)
// are read by a real PostgreSQL 15 without an error in any line; the server
// shows walship's settings and the Cluster's parameters; the local socket
// admits the superuser by peer; streaming_replica logs in over TLS with its
// client certificate, for a normal and a replication connection; any other
// TCP connection is asked for a password.
func TestPGConfRealServer(t *testing.T) {
	if u := harness.ServerUserName(t); u != "postgres" {
		// peer authentication needs the OS user to be the superuser "postgres".
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL runs as %s; CI runs as root, where it runs as postgres", u)
		}
		t.Skipf("PostgreSQL runs as %s, not postgres: run as root to test peer authentication", u)
	}
	for _, primary := range []bool{true, false} {
		name := map[bool]string{true: "primary", false: "standby settings"}[primary]
		t.Run(name, func(t *testing.T) { testPGConf(t, primary) })
	}
}

func testPGConf(t *testing.T, primary bool) {
	p := harness.NewPostgres(t, harness.PGOptions{NoStart: true})
	tlsDir := filepath.Join(p.DataDir, "tls")
	files := writeTestPKI(t, tlsDir)
	harness.GiveToServer(t, tlsDir)

	in := pgconf.Instance{
		Cluster: "pgconf", Namespace: "e2e", Name: "pgconf-1", Primary: primary,
		Port: p.Port, SocketDir: p.SocketDir, TLS: files,
		ArchiveCommand: "/bin/true %p",
		Parameters: map[string]string{
			"timezone": "Asia/Seoul", "max_worker_processes": "40", "max_wal_senders": "12",
			"walship.quoted": `it's a \ value`,
		},
		HBA: []string{"hostssl all all 127.0.0.1/32 scram-sha-256"},
	}
	if !primary {
		in.Name = "pgconf-2"
		in.RestoreCommand = "/bin/false %f %p"
		in.ReplicationSlot = pgconf.SlotName(in.Name)
	}
	conf, err := pgconf.Conf(in)
	if err != nil {
		t.Fatal(err)
	}
	hba, err := pgconf.HBA(in)
	if err != nil {
		t.Fatal(err)
	}
	writeServerFile(t, filepath.Join(p.DataDir, pgconf.ConfFile), conf)
	writeServerFile(t, filepath.Join(p.DataDir, "pg_hba.conf"), hba)
	pgConf := filepath.Join(p.DataDir, "postgresql.conf")
	initdbConf, err := os.ReadFile(pgConf)
	if err != nil {
		t.Fatal(err)
	}
	writeServerFile(t, pgConf, pgconf.EnsureInclude(string(initdbConf)))
	p.Start()

	local := "host=" + p.SocketDir + " port=" + strconv.Itoa(p.Port) + " user=postgres dbname=postgres"
	q := func(conn, sql string) string {
		t.Helper()
		out, err := psqlConn(t, p, conn, sql)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range [][2]string{
		// The harness starts the server with -c listen_addresses=127.0.0.1, which
		// wins over walship.conf's '*': PostgreSQL reports that line as a setting
		// that "could not be applied", the only error allowed here.
		{"SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL AND NOT (name = 'listen_addresses' AND error = 'setting could not be applied')", "0"},
		{"SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL", "0"},
		{"SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%/" + pgconf.ConfFile + "'", ""},
		{"SHOW ssl", "on"},
		{"SHOW archive_mode", "on"},
		{"SHOW archive_command", "/bin/true %p"},
		{"SHOW wal_level", "replica"},
		{"SHOW hot_standby", "on"},
		{"SHOW max_wal_senders", "12"},
		{"SHOW max_replication_slots", "32"},
		{"SHOW timezone", "Asia/Seoul"},
		{"SHOW max_worker_processes", "40"},
		{"SHOW \"walship.quoted\"", `it's a \ value`},
		{"SHOW ssl_ca_file", files.ClientCA},
	} {
		got := q(local, c[0])
		if strings.Contains(c[0], "error IS NOT NULL") && got != "0" {
			t.Errorf("%s: %s", c[0], q(local, strings.Replace(c[0], "count(*)", "*", 1)))
			continue
		}
		if c[1] == "" {
			if got == "0" {
				t.Errorf("%s: PostgreSQL read nothing from %s", c[0], pgconf.ConfFile)
			}
			continue
		}
		if got != c[1] {
			t.Errorf("%s = %q, want %q", c[0], got, c[1])
		}
	}
	if !primary {
		for _, c := range [][2]string{
			{"SHOW restore_command", "/bin/false %f %p"},
			{"SHOW primary_slot_name", "_walship_pgconf_2"},
		} {
			if got := q(local, c[0]); got != c[1] {
				t.Errorf("%s = %q, want %q", c[0], got, c[1])
			}
		}
		if got := q(local, "SHOW primary_conninfo"); !strings.Contains(got, "host=pgconf-rw port=5432 user=streaming_replica sslmode=verify-ca") ||
			!strings.Contains(got, "sslrootcert="+files.ServerCA) {
			t.Errorf("primary_conninfo = %q", got)
		}
		return
	}

	// pg_hba.conf: the rules in walship's order, then the closing password rule.
	rules := q(local, "SELECT type || ' ' || array_to_string(database, ',') || ' ' || array_to_string(user_name, ',') || ' ' || auth_method FROM pg_hba_file_rules ORDER BY line_number")
	want := "local all all peer\nhostssl postgres streaming_replica cert\nhostssl replication streaming_replica cert\nhostssl all all scram-sha-256\nhost all all scram-sha-256"
	if rules != want {
		t.Errorf("pg_hba_file_rules:\n%s\nwant:\n%s", rules, want)
	}

	// streaming_replica logs in with its certificate, verified against the CA.
	q(local, "CREATE ROLE streaming_replica LOGIN REPLICATION")
	tcp := "host=127.0.0.1 port=" + strconv.Itoa(p.Port) + " user=streaming_replica sslmode=verify-ca sslrootcert=" + files.ServerCA +
		" sslcert=" + files.ReplicationCert + " sslkey=" + files.ReplicationKey
	if got := q(tcp+" dbname=postgres", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != "t" {
		t.Errorf("streaming_replica's connection: ssl = %q", got)
	}
	if got := q(tcp+" replication=true", "IDENTIFY_SYSTEM"); got == "" {
		t.Errorf("IDENTIFY_SYSTEM over a replication connection returned nothing")
	}
	// streaming_replica without its certificate is refused; any other user
	// over TCP, with TLS (the Cluster's line) or without (the closing rule),
	// is asked for a password.
	addr := "host=127.0.0.1 port=" + strconv.Itoa(p.Port) + " dbname=postgres "
	for _, c := range [][2]string{
		{addr + "user=streaming_replica sslmode=require", "requires a valid client certificate"},
		{addr + "user=postgres sslmode=require", "password"},
		{addr + "user=postgres sslmode=disable", "password"},
	} {
		_, err := psqlConn(t, p, c[0], "SELECT 1")
		if err == nil || !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%s: %v, want a refusal saying %q", c[0], err, c[1])
		}
	}
}

// psqlConn runs SQL with psql as the server user over the connection string.
func psqlConn(t *testing.T, p *harness.Postgres, conn, sql string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(p.BinDir, "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", conn+" connect_timeout=10", "-c", sql)
	cmd.Env = []string{"HOME=" + filepath.Dir(p.DataDir), "PATH=/usr/bin:/bin", "PGPASSWORD=", "PGCONNECT_TIMEOUT=10"}
	cmd.Stdin = nil
	harness.AsServerUser(t, cmd)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &psqlError{sql: sql, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return strings.TrimRight(string(out), "\n"), nil
}

type psqlError struct {
	sql, stderr string
	err         error
}

func (e *psqlError) Error() string {
	return "psql " + strconv.Quote(e.sql) + ": " + e.err.Error() + ": " + e.stderr
}

func writeServerFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.GiveToServer(t, path)
}

// writeTestPKI makes a CA, a server certificate and streaming_replica's client
// certificate signed by it, in dir; one CA serves as both server and client CA.
func writeTestPKI(t *testing.T, dir string) pgconf.TLSFiles {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		writeServerFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
		return path
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "PRIVATE KEY", der)
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "walship e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certName, keyName string) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return write(certName, "CERTIFICATE", der), writeKey(keyName, k)
	}
	caPath := write("ca.crt", "CERTIFICATE", caDER)
	f := pgconf.TLSFiles{ClientCA: caPath, ServerCA: caPath}
	f.ServerCert, f.ServerKey = leaf(2, "pgconf-rw", x509.ExtKeyUsageServerAuth, "server.crt", "server.key")
	f.ReplicationCert, f.ReplicationKey = leaf(3, pgconf.ReplicationUser, x509.ExtKeyUsageClientAuth, "streaming_replica.crt", "streaming_replica.key")
	return f
}
