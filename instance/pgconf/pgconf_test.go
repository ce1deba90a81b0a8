package pgconf

import (
	"os/exec"
	"strings"
	"testing"
)

func tlsFiles() TLSFiles {
	return TLSFiles{
		ServerCert: "/tls/server.crt", ServerKey: "/tls/server.key", ClientCA: "/tls/client-ca.crt",
		ServerCA: "/tls/server-ca.crt", ReplicationCert: "/tls/repl.crt", ReplicationKey: "/tls/repl key.key",
	}
}

func primary() Instance {
	return Instance{
		Cluster: "mycluster", Namespace: "default", Name: "mycluster-1", Primary: true,
		Port: 5432, SocketDir: "/controller/run", TLS: tlsFiles(),
		ArchiveCommand: "/usr/local/bin/walship wal-push %p",
	}
}

func standby() Instance {
	in := primary()
	in.Name, in.Primary = "mycluster-2", false
	in.RestoreCommand = "/usr/local/bin/walship wal-fetch %f %p"
	in.ReplicationSlot = SlotName("mycluster-2")
	return in
}

func TestConf(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          func() Instance
		want, unwan []string // lines that must (not) appear
	}{
		{"primary with archive", primary, []string{
			"listen_addresses = '*'", "port = 5432", "unix_socket_directories = '/controller/run'",
			"ssl = on", "ssl_cert_file = '/tls/server.crt'", "ssl_key_file = '/tls/server.key'", "ssl_ca_file = '/tls/client-ca.crt'",
			"wal_level = replica", "hot_standby = on", "max_wal_senders = 10", "max_replication_slots = 32",
			"archive_mode = on", "archive_command = '/usr/local/bin/walship wal-push %p'",
		}, []string{"primary_conninfo", "primary_slot_name", "restore_command"}},
		{"standby with slot", standby, []string{
			"archive_mode = on", "restore_command = '/usr/local/bin/walship wal-fetch %f %p'",
			`primary_conninfo = 'host=mycluster-rw port=5432 user=streaming_replica sslmode=verify-ca sslcert=/tls/repl.crt sslkey=''/tls/repl key.key'' sslrootcert=/tls/server-ca.crt application_name=mycluster-2'`,
			"primary_slot_name = '_walship_mycluster_2'",
		}, nil},
		{"standby without slot", func() Instance { in := standby(); in.ReplicationSlot = ""; return in },
			[]string{"primary_conninfo = "}, []string{"primary_slot_name"}},
		{"no repository", func() Instance { in := primary(); in.ArchiveCommand = ""; return in },
			[]string{"archive_mode = off"}, []string{"archive_command", "archive_mode = on"}},
		{"user parameters sorted and quoted", func() Instance {
			in := primary()
			in.Parameters = map[string]string{
				"timezone": "Asia/Seoul", "max_worker_processes": "40",
				"application_name": `it's a \ path`, "pg_stat_statements.max": "10000",
			}
			return in
		}, []string{
			"# The Cluster's postgresql.parameters\napplication_name = 'it''s a \\\\ path'\nmax_worker_processes = '40'\npg_stat_statements.max = '10000'\ntimezone = 'Asia/Seoul'\n",
		}, nil},
		{"user raises the defaults and asks for logical", func() Instance {
			in := primary()
			in.Parameters = map[string]string{"wal_level": "logical", "max_wal_senders": "20", "max_replication_slots": "40"}
			return in
		}, []string{"max_wal_senders = '20'", "max_replication_slots = '40'", "wal_level = 'logical'"},
			[]string{"wal_level = replica", "max_wal_senders = 10", "max_replication_slots = 32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Conf(tc.in())
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, u := range tc.unwan {
				if strings.Contains(got, u) {
					t.Errorf("unexpected %q in:\n%s", u, got)
				}
			}
			if again, _ := Conf(tc.in()); again != got {
				t.Errorf("Conf is not deterministic")
			}
		})
	}
}

func TestConfRefuses(t *testing.T) {
	withParams := func(p map[string]string) func() Instance {
		return func() Instance { in := primary(); in.Parameters = p; return in }
	}
	for _, tc := range []struct {
		name string
		in   func() Instance
		want string
	}{
		{"controlled parameter", withParams(map[string]string{"timezone": "UTC", "archive_command": "true"}), "archive_command is managed by walship"},
		{"controlled ssl", withParams(map[string]string{"ssl": "off"}), "ssl is managed by walship"},
		{"wal_level minimal", withParams(map[string]string{"wal_level": "minimal"}), `wal_level "minimal"`},
		{"wal_level with a space", withParams(map[string]string{"wal_level": "logical "}), `wal_level "logical "`},
		{"wal_level nonsense", withParams(map[string]string{"wal_level": "archive"}), `wal_level "archive"`},
		{"lowered max_wal_senders", withParams(map[string]string{"max_wal_senders": "2"}), "max_wal_senders \"2\": must be a whole number of at least 10"},
		{"upper-case name", withParams(map[string]string{"ARCHIVE_MODE": "on"}), `"ARCHIVE_MODE" is not a parameter name`},
		{"name with a space", withParams(map[string]string{"work_mem = 1; x": "1"}), "is not a parameter name"},
		{"empty name", withParams(map[string]string{"": "1"}), "is not a parameter name"},
		{"trailing dot", withParams(map[string]string{"auto_explain.": "1"}), "is not a parameter name"},
		{"include directive", withParams(map[string]string{"include": "/etc/passwd"}), "directive"},
		{"newline in value", withParams(map[string]string{"work_mem": "1MB\narchive_mode = off"}), "work_mem: the value holds a newline"},
		{"carriage return in value", withParams(map[string]string{"work_mem": "1MB\r"}), "newline"},
		{"NUL in value", withParams(map[string]string{"work_mem": "1\x00"}), "NUL"},
		{"no port", func() Instance { in := primary(); in.Port = 0; return in }, "port 0"},
		{"relative socket dir", func() Instance { in := primary(); in.SocketDir = "run"; return in }, "absolute"},
		{"no server cert", func() Instance { in := primary(); in.TLS.ServerCert = ""; return in }, "server certificate"},
		{"standby without replication key", func() Instance { in := standby(); in.TLS.ReplicationKey = ""; return in }, "replication key"},
		{"bad slot", func() Instance { in := standby(); in.ReplicationSlot = "My-Slot"; return in }, "replication slot"},
		{"newline in archive_command", func() Instance { in := primary(); in.ArchiveCommand = "a\nb"; return in }, "archive_command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Conf(tc.in())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Conf: error %v, want one saying %q; text:\n%s", err, tc.want, got)
			}
		})
	}
}

func TestHBA(t *testing.T) {
	in := primary()
	in.HBA = []string{"hostssl all all 10.0.0.0/8 scram-sha-256", "host app app 0.0.0.0/0 reject"}
	got, err := HBA(in)
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(got, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, l)
		}
	}
	want := []string{
		"local all all peer",
		"hostssl postgres streaming_replica all cert",
		"hostssl replication streaming_replica all cert",
		"hostssl all all 10.0.0.0/8 scram-sha-256",
		"host app app 0.0.0.0/0 reject",
		"host all all all scram-sha-256",
	}
	if strings.Join(rules, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(rules, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(got, "# The Cluster's postgresql.pg_hba\nhostssl all all 10.0.0.0/8") {
		t.Errorf("the Cluster's section is not commented:\n%s", got)
	}

	in.HBA = nil
	if got, err := HBA(in); err != nil || strings.Contains(got, "postgresql.pg_hba\n") {
		t.Errorf("no user lines: %v\n%s", err, got)
	}
	for _, bad := range []string{"host all all all trust\nlocal all all trust", "host all all all trust\r", "a\x00"} {
		in.HBA = []string{"host all all 127.0.0.1/32 scram-sha-256", bad}
		if _, err := HBA(in); err == nil || !strings.Contains(err.Error(), "pg_hba line 2") {
			t.Errorf("HBA(%q): error %v, want one naming line 2", bad, err)
		}
	}
}

func TestSlotName(t *testing.T) {
	if got := SlotName("mycluster-2"); got != "_walship_mycluster_2" {
		t.Errorf("SlotName = %s", got)
	}
	if !slotName.MatchString(SlotName("a-very-long-cluster-name-12")) {
		t.Errorf("SlotName gives a name PostgreSQL refuses")
	}
}

// TestNoKubernetes: the walship binary uses this package and must not carry
// Kubernetes' libraries.
func TestNoKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") || strings.HasSuffix(d, "/api/v1") {
			t.Errorf("instance/pgconf depends on %s", d)
		}
	}
}

func TestEnsureInclude(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    IncludeLine + "\n",
		"port = 5432":                         "port = 5432\n" + IncludeLine + "\n",
		"a = 1\n" + IncludeLine + "\nb = 2\n": "a = 1\nb = 2\n" + IncludeLine + "\n",
		"a = 1\n" + IncludeLine + "\n":        "a = 1\n" + IncludeLine + "\n",
	} {
		if got := EnsureInclude(in); got != want {
			t.Errorf("EnsureInclude(%q) = %q, want %q", in, got, want)
		}
		if got := EnsureInclude(EnsureInclude(in)); got != want {
			t.Errorf("EnsureInclude is not idempotent on %q: %q", in, got)
		}
	}
}
