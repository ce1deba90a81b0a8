// Package bootstrap makes the data directory of a new primary with initdb
// (the Cluster's bootstrap.initdb) and runs the instance: it writes the
// server configuration walship owns (instance/pgconf) and supervises
// PostgreSQL (instance/supervisor) until its context is cancelled.
//
// The bootstrap is idempotent and crash-safe: a data directory that holds
// PG_VERSION is never initialised again; otherwise initdb writes into the
// sibling folder <pgdata>.initdb (removed first when a crashed attempt left
// it), the post-init steps run on a server listening on a private socket
// only, and the folder is renamed into place only after all of them
// succeeded. A kill at any moment leaves either no data directory (the next
// run does everything again) or a complete one.
//
// It uses no Kubernetes code: the walship binary carries it.
package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship/instance/pgconf"
	"github.com/walship/walship/instance/supervisor"
	"github.com/walship/walship/internal/fsync"
)

// Superuser is the superuser initdb creates; the instance manager connects
// as it over the local socket.
const Superuser = "postgres"

// InitDB are the bootstrap.initdb options of a Cluster.
type InitDB struct {
	Database               string // the application database, e.g. "app"
	Owner                  string // its owner, a LOGIN role (its password is set later)
	Encoding               string // e.g. "UTF8"
	LocaleCollate          string
	LocaleCType            string
	DataChecksums          bool
	WALSegSizeMB           int      // 0: initdb's default (16)
	PostInitSQL            []string // run in the postgres database, in order
	PostInitApplicationSQL []string // run in the application database, in order
}

// Options is everything Run needs.
type Options struct {
	PGData string // the data directory (absolute)
	BinDir string // PostgreSQL's programs: initdb, postgres, psql
	InitDB InitDB
	// Instance is the configuration written on every start; its
	// SocketDir and Port are also the server's.
	Instance pgconf.Instance
	// Log receives walship's messages and the servers' output.
	Log io.Writer
	// StopTimeout bounds the fast shutdown on cancel (supervisor's default when 0).
	StopTimeout time.Duration
}

var (
	encodingName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	localeName   = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)
)

// Validate reports every problem of the options that initdb or the server
// would otherwise report late, or misread.
func (o Options) Validate() error {
	var errs []error
	if !filepath.IsAbs(o.PGData) || filepath.Clean(o.PGData) == "/" {
		errs = append(errs, fmt.Errorf("pgdata %q must be an absolute path below /", o.PGData))
	}
	if o.BinDir == "" {
		errs = append(errs, errors.New("the folder of PostgreSQL's programs (bindir) is required"))
	}
	if err := o.InitDB.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !o.Instance.Primary {
		errs = append(errs, errors.New("only a primary can be bootstrapped with initdb"))
	} else if _, err := pgconf.Conf(o.Instance); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate checks the initdb options.
func (in *InitDB) Validate() error {
	var errs []error
	for _, n := range [][2]string{{"database", in.Database}, {"owner", in.Owner}} {
		if n[1] == "" || len(n[1]) > 63 || strings.ContainsAny(n[1], "\x00\n\r") {
			errs = append(errs, fmt.Errorf("initdb: %s %q must be 1 to 63 characters without control characters", n[0], n[1]))
		}
	}
	if in.Owner == Superuser || in.Owner == pgconf.ReplicationUser {
		errs = append(errs, fmt.Errorf("initdb: owner %q is a role walship reserves", in.Owner))
	}
	if !encodingName.MatchString(in.Encoding) {
		errs = append(errs, fmt.Errorf("initdb: encoding %q is not an encoding name (letters, digits, '_' and '-')", in.Encoding))
	}
	for _, n := range [][2]string{{"localeCollate", in.LocaleCollate}, {"localeCType", in.LocaleCType}} {
		if !localeName.MatchString(n[1]) {
			errs = append(errs, fmt.Errorf("initdb: %s %q is not a locale name (letters, digits, '_', '.', '@' and '-')", n[0], n[1]))
		}
	}
	if s := in.WALSegSizeMB; s != 0 && (s < 1 || s > 1024 || s&(s-1) != 0) {
		errs = append(errs, fmt.Errorf("initdb: walSegmentSize %d MB must be a power of two from 1 to 1024", s))
	}
	for i, q := range append(append([]string{}, in.PostInitSQL...), in.PostInitApplicationSQL...) {
		if strings.TrimSpace(q) == "" {
			errs = append(errs, fmt.Errorf("initdb: post-init SQL statement %d is empty", i+1))
		}
	}
	return errors.Join(errs...)
}

func (o *Options) logf(format string, args ...any) {
	fmt.Fprintf(o.log(), "walship instance: "+format+"\n", args...)
}

func (o *Options) log() io.Writer {
	if o.Log == nil {
		return io.Discard
	}
	return o.Log
}

// Run bootstraps the data directory when needed, writes the configuration
// and supervises PostgreSQL until ctx is cancelled (fast shutdown).
func Run(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if err := Bootstrap(ctx, o); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := WriteConfig(o.PGData, o.Instance); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Instance.SocketDir, 0o755); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	s := &supervisor.Supervisor{
		Postgres:    filepath.Join(o.BinDir, "postgres"),
		DataDir:     o.PGData,
		Log:         o.log(),
		StopTimeout: o.StopTimeout,
		OnStart:     func(pid int) { o.logf("PostgreSQL started, pid %d", pid) },
		OnExit:      func(e supervisor.Exit) { o.logf("PostgreSQL exited: %s", e) },
	}
	err := s.Run(ctx)
	o.logf("stopped")
	return err
}

// WriteConfig writes walship.conf and pg_hba.conf for in into pgdata and
// makes postgresql.conf include walship.conf last.
func WriteConfig(pgdata string, in pgconf.Instance) error {
	conf, err := pgconf.Conf(in)
	if err != nil {
		return err
	}
	hba, err := pgconf.HBA(in)
	if err != nil {
		return err
	}
	pc := filepath.Join(pgdata, "postgresql.conf")
	old, err := os.ReadFile(pc)
	if err != nil {
		return err
	}
	for name, text := range map[string]string{
		pgconf.ConfFile: conf, "pg_hba.conf": hba, "postgresql.conf": pgconf.EnsureInclude(string(old)),
	} {
		if err := writeAtomic(filepath.Join(pgdata, name), []byte(text)); err != nil {
			return err
		}
	}
	return nil
}

// Bootstrap initialises o.PGData unless it holds PG_VERSION already.
func Bootstrap(ctx context.Context, o Options) error {
	if _, err := os.Stat(filepath.Join(o.PGData, "PG_VERSION")); err == nil {
		o.logf("%s holds a data directory: no initdb", o.PGData)
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if ents, err := os.ReadDir(o.PGData); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty and holds no PG_VERSION: refusing to initialise over it", o.PGData)
	}
	tmp := filepath.Clean(o.PGData) + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("removing what a crashed bootstrap left: %w", err)
	}
	o.logf("initdb into %s", tmp)
	args := []string{"-D", tmp, "--username=" + Superuser, "--auth-local=trust", "--auth-host=scram-sha-256",
		"--encoding=" + o.InitDB.Encoding, "--lc-collate=" + o.InitDB.LocaleCollate, "--lc-ctype=" + o.InitDB.LocaleCType}
	// initdb's optional switches, each given when its setting asks for it.
	for _, opt := range []struct {
		given bool
		arg   string
	}{
		{o.InitDB.DataChecksums, "--data-checksums"},
		{o.InitDB.WALSegSizeMB != 0, "--wal-segsize=" + strconv.Itoa(o.InitDB.WALSegSizeMB)},
	} {
		if opt.given {
			args = append(args, opt.arg)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(o.BinDir, "initdb"), args...)
	cmd.Stdout, cmd.Stderr = o.log(), o.log()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := postInit(ctx, o, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.PGData); err != nil {
		return fmt.Errorf("moving the new data directory into place: %w", err)
	}
	if err := fsync.Dir(filepath.Dir(o.PGData)); err != nil {
		return err
	}
	o.logf("bootstrap complete: %s", o.PGData)
	return nil
}

// postInit starts the new server on a private socket only, creates the
// roles and the application database, runs the post-init SQL and stops it
// with a fast shutdown.
func postInit(ctx context.Context, o Options, dir string) (err error) {
	// A private socket folder named after the data directory, so that the
	// one a killed attempt left is reused (a socket path has at most 107
	// bytes: no deep folders).
	sock := filepath.Join(os.TempDir(), fmt.Sprintf("walship-initdb-%08x", crc32.ChecksumIEEE([]byte(dir))))
	if err := os.RemoveAll(sock); err != nil {
		return err
	}
	if err := os.Mkdir(sock, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(sock)
	// Pdeathsig follows the thread that started the child: keep it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const port = "5432"
	srv := exec.Command(filepath.Join(o.BinDir, "postgres"), "-D", dir, "-p", port, "-k", sock,
		"-c", "listen_addresses=", "-c", "unix_socket_permissions=0700")
	srv.Stdout, srv.Stderr = o.log(), o.log()
	// The server dies with walship: a killed bootstrap leaves no server
	// behind on the folder the next attempt removes.
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("starting the new server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case werr := <-exited:
			if err == nil && werr != nil {
				err = fmt.Errorf("the new server's fast shutdown: %w", werr)
			}
		case <-time.After(60 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
			if err == nil {
				err = errors.New("the new server did not stop within 60 s")
			}
		}
	}()

	psql := func(db, sql string) error {
		c := exec.CommandContext(ctx, filepath.Join(o.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
			"-h", sock, "-p", port, "-U", Superuser, "-d", db, "-c", sql)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Run(); err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		perr := psql("postgres", "select 1")
		if perr == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr
			return fmt.Errorf("the new server exited: %v", werr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the new server did not accept connections within 60 s: %v", perr)
		}
	}

	in := o.InitDB
	steps := []struct{ what, db, sql string }{
		{"creating the owner role", "postgres", "CREATE ROLE " + ident(in.Owner) + " LOGIN"},
		{"creating the database", "postgres", fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s",
			ident(in.Database), ident(in.Owner), literal(in.Encoding), literal(in.LocaleCollate), literal(in.LocaleCType))},
		{"creating the replication role", "postgres", "CREATE ROLE " + ident(pgconf.ReplicationUser) + " REPLICATION LOGIN"},
	}
	for i, q := range in.PostInitSQL {
		steps = append(steps, struct{ what, db, sql string }{fmt.Sprintf("postInitSQL %d", i+1), "postgres", q})
	}
	for i, q := range in.PostInitApplicationSQL {
		steps = append(steps, struct{ what, db, sql string }{fmt.Sprintf("postInitApplicationSQL %d", i+1), in.Database, q})
	}
	for _, s := range steps {
		o.logf("bootstrap: %s", s.what)
		if err := psql(s.db, s.sql); err != nil {
			return fmt.Errorf("bootstrap: %s: %w", s.what, err)
		}
	}
	return nil
}

// ident quotes an SQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes an SQL string literal (standard_conforming_strings is on).
func literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// writeAtomic writes path through a temporary file, synced, then renamed.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".walship-tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return fsync.Dir(filepath.Dir(path))
}
