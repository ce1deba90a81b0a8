package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/instance/pki"
)

// TestPKIRealServer: a PostgreSQL 15 server with ssl on and instance/pki's
// server certificate admits streaming_replica by its instance/pki client
// certificate (pg_hba's cert method), for a normal and a replication
// connection, verified as verify-full against the Cluster's CA with the
// server name <cluster>-rw, over TLSv1.3; a client certificate for the same
// role from another CA is refused.
func TestPKIRealServer(t *testing.T) {
	const cluster = "pki"
	now := time.Now()
	ca, err := pki.NewCA(cluster, now)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey, err := ca.ServerCert(cluster, "e2e", now)
	if err != nil {
		t.Fatal(err)
	}

	p := harness.NewPostgres(t, harness.PGOptions{NoStart: true})
	tlsDir := filepath.Join(p.DataDir, "tls")
	if err := os.Mkdir(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	harness.GiveToServer(t, tlsDir)
	for name, data := range map[string][]byte{"ca.crt": ca.CertPEM(), "server.crt": serverCert, "server.key": serverKey} {
		writeServerFile(t, filepath.Join(tlsDir, name), string(data))
	}
	p.AppendConf("ssl = on",
		"ssl_cert_file = '"+filepath.Join(tlsDir, "server.crt")+"'",
		"ssl_key_file = '"+filepath.Join(tlsDir, "server.key")+"'",
		"ssl_ca_file = '"+filepath.Join(tlsDir, "ca.crt")+"'")
	hbaPath := filepath.Join(p.DataDir, "pg_hba.conf")
	hba, err := os.ReadFile(hbaPath)
	if err != nil {
		t.Fatal(err)
	}
	// walship's lines first: the first matching line decides.
	writeServerFile(t, hbaPath, "hostssl replication streaming_replica all cert\nhostssl all streaming_replica all cert\n"+string(hba))
	p.Start()
	p.Psql("CREATE ROLE streaming_replica LOGIN REPLICATION")

	// Client files as a standby would have them; the test process reads them.
	clientDir := t.TempDir()
	writeClient := func(name string, data []byte) string {
		path := filepath.Join(clientDir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caFile := writeClient("ca.crt", ca.CertPEM())
	// connString is verify-full against the Cluster's CA, with a client
	// certificate for streaming_replica from c.
	connString := func(c *pki.CA, extra string) string {
		certPEM, keyPEM, err := c.ClientCert("streaming_replica", now)
		if err != nil {
			t.Fatal(err)
		}
		prefix := strconv.Itoa(int(time.Now().UnixNano()))
		return "host=127.0.0.1 port=" + strconv.Itoa(p.Port) + " user=streaming_replica connect_timeout=10" +
			" sslmode=verify-full sslrootcert=" + caFile +
			" sslcert=" + writeClient(prefix+".crt", certPEM) + " sslkey=" + writeClient(prefix+".key", keyPEM) + " " + extra
	}
	// serverName makes verify-full check the name the certificate is for
	// rather than 127.0.0.1, as a standby that dials the -rw Service does.
	serverName := func(cfg *pgconn.Config, name string) *pgconn.Config {
		cfg.TLSConfig.ServerName = name
		cfg.Fallbacks = nil
		return cfg
	}
	parse := func(conn, name string) *pgconn.Config {
		cfg, err := pgconn.ParseConfig(conn)
		if err != nil {
			t.Fatal(err)
		}
		return serverName(cfg, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pcfg, err := pgx.ParseConfig(connString(ca, "dbname=postgres"))
	if err != nil {
		t.Fatal(err)
	}
	serverName(&pcfg.Config, cluster+"-rw")
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		t.Fatalf("streaming_replica with its certificate: %v", err)
	}
	var version, user string
	if err := conn.QueryRow(ctx, "SELECT version, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&version, &user); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if version != "TLSv1.3" || user != "streaming_replica" {
		t.Errorf("connection: TLS %q as %q, want TLSv1.3 as streaming_replica", version, user)
	}

	rconn, err := pgconn.ConnectConfig(ctx, parse(connString(ca, "replication=true"), cluster+"-ro.e2e.svc"))
	if err != nil {
		t.Fatalf("replication connection with the certificate: %v", err)
	}
	res, err := rconn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	rconn.Close(ctx)
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		t.Errorf("IDENTIFY_SYSTEM: %v, %v", res, err)
	}

	// verify-full is real: a name the server certificate is not for fails.
	if c, err := pgconn.ConnectConfig(ctx, parse(connString(ca, "dbname=postgres"), "other-rw")); err == nil {
		c.Close(ctx)
		t.Error("server certificate accepted for other-rw")
	}

	other, err := pki.NewCA(cluster, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range []string{"dbname=postgres", "replication=true"} {
		c, err := pgconn.ConnectConfig(ctx, parse(connString(other, extra), cluster+"-rw"))
		if err == nil {
			c.Close(ctx)
			t.Errorf("%s: a client certificate from another CA is accepted", extra)
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: refused for another reason: %v", extra, err)
		} else {
			t.Logf("%s with another CA's certificate: %v", extra, err)
		}
	}
}
