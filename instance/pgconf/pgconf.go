// Package pgconf renders the server configuration that walship's instance
// manager owns: the include file walship.conf (included from
// postgresql.conf) and pg_hba.conf. It is pure: an Instance in, file text
// out. It knows nothing of Kubernetes (the walship binary uses it, and must
// start fast); a caller maps a Cluster into an Instance.
package pgconf

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/walship/walship/internal/pg"
)

// ConfFile is the name of the include file Conf renders, in the data
// directory beside postgresql.conf.
const ConfFile = "walship.conf"

// IncludeLine is the line postgresql.conf ends with so that walship.conf is
// read last and its settings win over initdb's.
const IncludeLine = "include '" + ConfFile + "'"

// EnsureInclude returns postgresql.conf's text ending with IncludeLine, once:
// walship.conf is read last, so its settings win over anything before it.
func EnsureInclude(postgresqlConf string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(postgresqlConf, "\n") {
		if strings.TrimSpace(l) != IncludeLine && l != "" {
			b.WriteString(l)
		}
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	b.WriteString(IncludeLine + "\n")
	return b.String()
}

// ServicePort is the port of the <cluster>-rw Service standbys stream from.
const ServicePort = 5432

// ReplicationUser is the role standbys connect as, authenticated by a TLS
// client certificate (pg_hba's cert method), never by a password.
const ReplicationUser = "streaming_replica"

// Defaults walship writes unless the Cluster's parameters set them; a
// Cluster may raise them, not lower them.
const (
	DefaultMaxWALSenders       = 10
	DefaultMaxReplicationSlots = 32
)

// Controlled lists the parameters walship manages: a Cluster's
// postgresql.parameters may not set them. The CRD refuses the same list at
// admission (api/v1/cluster_types.go, PostgresConfiguration.Parameters; a
// test keeps the two equal).
var Controlled = []string{
	"archive_mode", "archive_command", "restore_command",
	"recovery_target", "recovery_target_time", "recovery_target_xid", "recovery_target_name",
	"recovery_target_lsn", "recovery_target_timeline", "recovery_target_action", "recovery_target_inclusive",
	"primary_conninfo", "primary_slot_name",
	"data_directory", "hba_file", "ident_file", "config_file",
	"port", "listen_addresses", "unix_socket_directories",
	"ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "hot_standby",
}

// directives are words postgresql.conf reads as directives, not parameters:
// "include = 'file'" would include a file.
var directives = []string{"include", "include_dir", "include_if_exists"}

// TLSFiles are paths of the certificates and keys an instance uses.
type TLSFiles struct {
	ServerCert, ServerKey string // ssl_cert_file, ssl_key_file: this server's certificate
	ClientCA              string // ssl_ca_file: the CA that signs client certificates (streaming_replica)
	ServerCA              string // sslrootcert of a standby: the CA that signed the primary's server certificate
	ReplicationCert       string // sslcert of a standby: streaming_replica's client certificate
	ReplicationKey        string // sslkey of a standby
}

// Instance is what the configuration of one PostgreSQL instance depends on.
type Instance struct {
	Cluster, Namespace, Name string            // cluster "mycluster", instance "mycluster-1"
	Primary                  bool              // false: a standby following the primary through <cluster>-rw
	Port                     int               // port PostgreSQL listens on, e.g. 5432
	SocketDir                string            // unix_socket_directories (absolute)
	Parameters               map[string]string // the Cluster's postgresql.parameters
	HBA                      []string          // the Cluster's postgresql.pg_hba lines
	ArchiveCommand           string            // "" when the Cluster has no repository: archive_mode = off
	RestoreCommand           string            // "" when there is none
	TLS                      TLSFiles
	ReplicationSlot          string // this standby's slot on the primary ("" = none); see SlotName
}

// SlotName is the replication slot on the primary for a standby instance,
// named as CloudNativePG does: _walship_ and the instance's name with each
// '-' as '_' (slot names allow only lower-case letters, digits and '_').
func SlotName(instance string) string {
	return "_walship_" + strings.ReplaceAll(instance, "-", "_")
}

var (
	paramName = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$`)
	slotName  = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
)

// CheckParameters reports the first problem of a Cluster's parameters: a bad
// name, a parameter walship controls, a value with a newline or NUL byte, a
// wal_level other than replica or logical, or a lowered default.
func CheckParameters(params map[string]string) error {
	for _, k := range sortedKeys(params) {
		v := params[k]
		switch {
		case !paramName.MatchString(k):
			return fmt.Errorf("postgresql.parameters: %q is not a parameter name (lower-case letters, digits and '_', with '.' for an extension's parameters)", k)
		case slices.Contains(directives, k):
			return fmt.Errorf("postgresql.parameters: %q is a configuration file directive, not a parameter", k)
		case slices.Contains(Controlled, k):
			return fmt.Errorf("postgresql.parameters: %s is managed by walship and cannot be set (configure backup, bootstrap and replica instead)", k)
		}
		if err := checkValue("postgresql.parameters: "+k, v); err != nil {
			return err
		}
		switch k {
		case "wal_level":
			if l := strings.ToLower(v); l != "replica" && l != "logical" {
				return fmt.Errorf("postgresql.parameters: wal_level %q: walship needs replica (the default) or logical; minimal cannot archive or replicate", v)
			}
		case "max_wal_senders", "max_replication_slots":
			floor := map[string]int{"max_wal_senders": DefaultMaxWALSenders, "max_replication_slots": DefaultMaxReplicationSlots}[k]
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < floor {
				return fmt.Errorf("postgresql.parameters: %s %q: must be a whole number of at least %d (walship's default); it may be raised, not lowered", k, v, floor)
			}
		}
	}
	return nil
}

func checkValue(what, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return fmt.Errorf("%s: the value holds a newline or a NUL byte", what)
	}
	return nil
}

// Conf renders walship.conf for in: connections and TLS, replication,
// archiving and recovery, a standby's primary_conninfo and slot, then the
// Cluster's parameters sorted by name. It refuses what PostgreSQL would
// misread or what would break archiving or replication.
func Conf(in Instance) (string, error) {
	if err := in.check(); err != nil {
		return "", err
	}
	if err := CheckParameters(in.Parameters); err != nil {
		return "", err
	}
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	quoted := func(k, v string) { set(k, pg.ConfQuote(v)) }
	_, userSets := in.Parameters["wal_level"]
	unlessUser := func(k, v string) {
		if _, ok := in.Parameters[k]; !ok {
			set(k, v)
		}
	}

	fmt.Fprintf(&b, "# %s: written by walship's instance manager for instance %s of cluster %s.\n", ConfFile, in.Name, in.clusterName())
	b.WriteString("# Do not edit: it is rewritten; set the Cluster's postgresql.parameters instead.\n")

	b.WriteString("\n# Connections: every address of the pod, TLS on\n")
	quoted("listen_addresses", "*")
	set("port", strconv.Itoa(in.Port))
	quoted("unix_socket_directories", in.SocketDir)
	set("ssl", "on")
	quoted("ssl_cert_file", in.TLS.ServerCert)
	quoted("ssl_key_file", in.TLS.ServerKey)
	quoted("ssl_ca_file", in.TLS.ClientCA)

	b.WriteString("\n# Replication (wal_level, max_wal_senders and max_replication_slots: the Cluster may raise them)\n")
	if !userSets {
		set("wal_level", "replica")
	}
	set("hot_standby", "on")
	unlessUser("max_wal_senders", strconv.Itoa(DefaultMaxWALSenders))
	unlessUser("max_replication_slots", strconv.Itoa(DefaultMaxReplicationSlots))

	b.WriteString("\n# Archiving and recovery\n")
	if in.ArchiveCommand != "" {
		set("archive_mode", "on")
		quoted("archive_command", in.ArchiveCommand)
	} else {
		b.WriteString("# the Cluster has no repository\n")
		set("archive_mode", "off")
	}
	if in.RestoreCommand != "" {
		quoted("restore_command", in.RestoreCommand)
	}

	if !in.Primary {
		b.WriteString("\n# Standby: stream from the primary through the -rw Service, as " + ReplicationUser + " with its client certificate\n")
		quoted("primary_conninfo", in.primaryConninfo())
		if in.ReplicationSlot != "" {
			quoted("primary_slot_name", in.ReplicationSlot)
		}
	}

	if len(in.Parameters) > 0 {
		b.WriteString("\n# The Cluster's postgresql.parameters\n")
		for _, k := range sortedKeys(in.Parameters) {
			quoted(k, in.Parameters[k])
		}
	}
	return b.String(), nil
}

func (in Instance) clusterName() string {
	if in.Namespace == "" {
		return in.Cluster
	}
	return in.Namespace + "/" + in.Cluster
}

func (in Instance) check() error {
	var errs []error
	if in.Cluster == "" || in.Name == "" {
		errs = append(errs, errors.New("the cluster's and the instance's names are required"))
	}
	if in.Port < 1 || in.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is not a TCP port", in.Port))
	}
	if !filepath.IsAbs(in.SocketDir) {
		errs = append(errs, fmt.Errorf("unix_socket_directories %q must be an absolute path", in.SocketDir))
	}
	need := [][2]string{{"server certificate", in.TLS.ServerCert}, {"server key", in.TLS.ServerKey}, {"client CA", in.TLS.ClientCA}}
	if !in.Primary {
		need = append(need, [][2]string{{"server CA", in.TLS.ServerCA}, {"replication certificate", in.TLS.ReplicationCert}, {"replication key", in.TLS.ReplicationKey}}...)
	}
	for _, n := range need {
		if n[1] == "" {
			errs = append(errs, fmt.Errorf("TLS: the %s file is required", n[0]))
		}
	}
	if in.ReplicationSlot != "" && !slotName.MatchString(in.ReplicationSlot) {
		errs = append(errs, fmt.Errorf("replication slot %q: up to 63 lower-case letters, digits and '_'", in.ReplicationSlot))
	}
	for _, v := range [][2]string{
		{"cluster", in.Cluster}, {"namespace", in.Namespace}, {"instance", in.Name}, {"unix_socket_directories", in.SocketDir},
		{"archive_command", in.ArchiveCommand}, {"restore_command", in.RestoreCommand},
		{"ssl_cert_file", in.TLS.ServerCert}, {"ssl_key_file", in.TLS.ServerKey}, {"ssl_ca_file", in.TLS.ClientCA},
		{"sslrootcert", in.TLS.ServerCA}, {"sslcert", in.TLS.ReplicationCert}, {"sslkey", in.TLS.ReplicationKey},
	} {
		if err := checkValue(v[0], v[1]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// primaryConninfo is a standby's connection to the primary: the -rw Service,
// TLS verified against the server CA, the replication client certificate.
func (in Instance) primaryConninfo() string {
	kv := [][2]string{
		{"host", in.Cluster + "-rw"},
		{"port", strconv.Itoa(ServicePort)},
		{"user", ReplicationUser},
		{"sslmode", "verify-ca"},
		{"sslcert", in.TLS.ReplicationCert},
		{"sslkey", in.TLS.ReplicationKey},
		{"sslrootcert", in.TLS.ServerCA},
		{"application_name", in.Name},
	}
	parts := make([]string, len(kv))
	for i, p := range kv {
		parts[i] = p[0] + "=" + conninfoQuote(p[1])
	}
	return strings.Join(parts, " ")
}

var conninfoPlain = regexp.MustCompile(`^[A-Za-z0-9_./:@+-]+$`)

// conninfoQuote quotes a libpq connection string value when it needs it:
// single quotes, with ' and \ escaped by a backslash.
func conninfoQuote(v string) string {
	if conninfoPlain.MatchString(v) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// HBA renders pg_hba.conf: walship's rules first (the local socket with peer
// authentication for the instance manager and the probes; streaming_replica
// over TLS with a client certificate), then the Cluster's lines in order,
// then the closing rule: every other connection needs a password
// (scram-sha-256). PostgreSQL uses the first line that matches, so the
// Cluster's lines cannot take replication or local access away from walship,
// and anything they do not match still needs a password.
func HBA(in Instance) (string, error) {
	for i, l := range in.HBA {
		if err := checkValue(fmt.Sprintf("postgresql.pg_hba line %d", i+1), l); err != nil {
			return "", err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# pg_hba.conf: written by walship's instance manager for instance %s of cluster %s.\n", in.Name, in.clusterName())
	b.WriteString("# Do not edit: it is rewritten; set the Cluster's postgresql.pg_hba instead.\n")
	b.WriteString("\n# walship: the instance manager and the probes, over the local socket\n")
	b.WriteString("local all all peer\n")
	b.WriteString("\n# walship: standbys, as " + ReplicationUser + " with a TLS client certificate\n")
	b.WriteString("hostssl postgres " + ReplicationUser + " all cert\n")
	b.WriteString("hostssl replication " + ReplicationUser + " all cert\n")
	if len(in.HBA) > 0 {
		b.WriteString("\n# The Cluster's postgresql.pg_hba\n")
		for _, l := range in.HBA {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("\n# walship: every other connection needs a password\n")
	b.WriteString("host all all all scram-sha-256\n")
	return b.String(), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
