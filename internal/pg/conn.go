package pg

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/internal/fault"
)

// The settings pg's callers' messages name (see fault.Setting).
const (
	// DataDir: the server's data directory.
	DataDir fault.Setting = "data directory"
	// Connection: how to reach the server (ConnOptions, and libpq's
	// environment).
	Connection fault.Setting = "PostgreSQL connection settings"
)

// ConnOptions override libpq's usual environment variables (PGHOST, PGPORT,
// PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE, ...), which pgx reads itself.
// Zero fields keep what the environment says.
type ConnOptions struct {
	Host     string // host name, or the directory of the server's unix socket
	Port     uint16
	User     string
	Database string
}

// Connect opens one session to the server, named "walship" in pg_stat_activity.
func Connect(ctx context.Context, o ConnOptions) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fault.Settingf(Connection, "%s: %w", Connection, err)
	}
	if o.Host != "" {
		cfg.Host, cfg.Fallbacks = o.Host, nil
	}
	if o.Port != 0 {
		cfg.Port = o.Port
		for _, fb := range cfg.Fallbacks {
			fb.Port = o.Port
		}
	}
	if o.User != "" {
		cfg.User = o.User
	}
	if o.Database != "" {
		cfg.Database = o.Database
	}
	cfg.RuntimeParams["application_name"] = "walship"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fault.Settingf(Connection, "connecting to PostgreSQL at %s port %d as %s: %w; check the %s",
			cfg.Host, cfg.Port, cfg.User, err, Connection)
	}
	return conn, nil
}
