package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/walship/walship/instance/bootstrap"
	"github.com/walship/walship/instance/pgconf"
)

// instanceEnv: the settings of `walship instance run` the operator sets in
// the pod spec (PGDATA comes from the common table).
var instanceEnv = map[string]string{
	"cluster":         "WALSHIP_CLUSTER",
	"namespace":       "WALSHIP_NAMESPACE",
	"instance":        "WALSHIP_INSTANCE",
	"bindir":          "WALSHIP_PG_BINDIR",
	"port":            "WALSHIP_PG_PORT",
	"socket-dir":      "WALSHIP_PG_SOCKET_DIR",
	"database":        "WALSHIP_INITDB_DATABASE",
	"owner":           "WALSHIP_INITDB_OWNER",
	"encoding":        "WALSHIP_INITDB_ENCODING",
	"locale-collate":  "WALSHIP_INITDB_LOCALE_COLLATE",
	"locale-ctype":    "WALSHIP_INITDB_LOCALE_CTYPE",
	"data-checksums":  "WALSHIP_INITDB_DATA_CHECKSUMS",
	"wal-segsize":     "WALSHIP_INITDB_WAL_SEGSIZE",
	"tls-server-cert": "WALSHIP_TLS_SERVER_CERT",
	"tls-server-key":  "WALSHIP_TLS_SERVER_KEY",
	"tls-client-ca":   "WALSHIP_TLS_CLIENT_CA",
	"stop-timeout":    "WALSHIP_PG_STOP_TIMEOUT",
	"pg-parameters":   "WALSHIP_PG_PARAMETERS",
	"pg-hba":          "WALSHIP_PG_HBA",
}

func init() { commandEnv["walship instance run"] = instanceEnv }

func instanceCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "instance",
		Short: "The instance manager: the entrypoint of a PostgreSQL pod",
	}
	c.AddCommand(instanceRunCmd())
	return c
}

func instanceRunCmd() *cobra.Command {
	var (
		o                bootstrap.Options
		params, hba      string
		postSQL, postApp []string
	)
	o.Instance.Primary = true
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Bootstrap the data directory of a primary with initdb when it has none, then run PostgreSQL until SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if params != "" {
				if err := json.Unmarshal([]byte(params), &o.Instance.Parameters); err != nil {
					return fmt.Errorf("--pg-parameters (WALSHIP_PG_PARAMETERS): a JSON object of strings: %w", err)
				}
			}
			if hba != "" {
				if err := json.Unmarshal([]byte(hba), &o.Instance.HBA); err != nil {
					return fmt.Errorf("--pg-hba (WALSHIP_PG_HBA): a JSON array of strings: %w", err)
				}
			}
			o.InitDB.PostInitSQL, o.InitDB.PostInitApplicationSQL = postSQL, postApp
			o.Log = os.Stderr
			return bootstrap.Run(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.PGData, "pgdata", "", "the data directory")
	fs.StringVar(&o.Instance.Cluster, "cluster", "", "the Cluster's name")
	fs.StringVar(&o.Instance.Namespace, "namespace", "", "the Cluster's namespace")
	fs.StringVar(&o.Instance.Name, "instance", "", "this instance's name (the pod's)")
	fs.StringVar(&o.BinDir, "bindir", "/usr/lib/postgresql/15/bin", "folder of PostgreSQL's programs")
	fs.IntVar(&o.Instance.Port, "port", pgconf.ServicePort, "port PostgreSQL listens on")
	fs.StringVar(&o.Instance.SocketDir, "socket-dir", "/run/postgresql", "unix_socket_directories")
	fs.StringVar(&o.InitDB.Database, "database", "app", "initdb: the application database")
	fs.StringVar(&o.InitDB.Owner, "owner", "app", "initdb: the application database's owner")
	fs.StringVar(&o.InitDB.Encoding, "encoding", "UTF8", "initdb: encoding")
	fs.StringVar(&o.InitDB.LocaleCollate, "locale-collate", "C", "initdb: LC_COLLATE")
	fs.StringVar(&o.InitDB.LocaleCType, "locale-ctype", "C", "initdb: LC_CTYPE")
	fs.BoolVar(&o.InitDB.DataChecksums, "data-checksums", false, "initdb: data checksums")
	fs.IntVar(&o.InitDB.WALSegSizeMB, "wal-segsize", 0, "initdb: WAL segment size in MB, a power of two from 1 to 1024 (0: 16)")
	fs.StringArrayVar(&postSQL, "post-init-sql", nil, "initdb: SQL run in the postgres database after initdb (repeatable)")
	fs.StringArrayVar(&postApp, "post-init-application-sql", nil, "initdb: SQL run in the application database after initdb (repeatable)")
	fs.StringVar(&o.Instance.TLS.ServerCert, "tls-server-cert", "", "ssl_cert_file")
	fs.StringVar(&o.Instance.TLS.ServerKey, "tls-server-key", "", "ssl_key_file")
	fs.StringVar(&o.Instance.TLS.ClientCA, "tls-client-ca", "", "ssl_ca_file: the CA of client certificates")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", 25*time.Second, "bound of the fast shutdown on SIGTERM before an immediate one")
	fs.StringVar(&params, "pg-parameters", "", "the Cluster's postgresql.parameters as a JSON object")
	fs.StringVar(&hba, "pg-hba", "", "the Cluster's pg_hba lines as a JSON array")
	return cmd
}
