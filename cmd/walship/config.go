package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"filippo.io/age"

	"github.com/walship/walship/archiver"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/repo"
	"github.com/walship/walship/internal/storage"
)

// config holds the settings every command shares. Each flag has an
// environment variable (envOf, and commandEnv for one command's own
// settings); a flag given on the command line wins.
type config struct {
	repo         string
	s3           storage.S3Options
	compression  string
	level        int
	recipients   string
	keyFile      string
	repoKeyFile  string
	timeout      time.Duration
	retryBudget  time.Duration
	verbose      bool
	walParallel  int
	prefetch     int
	pgdata       string
	agentTimeout time.Duration
	noAgent      bool
}

// envOf maps each flag to its environment variable.
var envOf = map[string]string{
	"repo":                 "WALSHIP_REPO",
	"s3-endpoint":          "WALSHIP_S3_ENDPOINT",
	"s3-region":            "WALSHIP_S3_REGION",
	"s3-path-style":        "WALSHIP_S3_PATH_STYLE",
	"s3-ca-file":           "WALSHIP_S3_CA_FILE",
	"s3-sse":               "WALSHIP_S3_SSE",
	"s3-sse-kms-key-id":    "WALSHIP_S3_SSE_KMS_KEY_ID",
	"s3-checksum":          "WALSHIP_S3_CHECKSUM",
	"compression":          "WALSHIP_COMPRESSION",
	"compression-level":    "WALSHIP_COMPRESSION_LEVEL",
	"encryption-recipient": "WALSHIP_ENCRYPTION_RECIPIENT",
	"encryption-key-file":  "WALSHIP_ENCRYPTION_KEY_FILE",
	"repo-key-file":        "WALSHIP_REPO_KEY_FILE",
	"timeout":              "WALSHIP_TIMEOUT",
	"retry-budget":         "WALSHIP_RETRY_BUDGET",
	"verbose":              "WALSHIP_VERBOSE",
	"parallel":             "WALSHIP_WAL_PARALLEL",
	"prefetch":             "WALSHIP_WAL_PREFETCH",
	"pgdata":               "PGDATA",
	"agent-timeout":        "WALSHIP_AGENT_TIMEOUT",
	"no-agent":             "WALSHIP_NO_AGENT",
}

func (c *config) registerCommon(fs *pflag.FlagSet) {
	fs.StringVar(&c.repo, "repo", "", "repository URL: s3://bucket/prefix or file:///path")
	fs.StringVar(&c.s3.Endpoint, "s3-endpoint", "", "S3 endpoint URL for MinIO and other S3-compatible stores (empty: AWS)")
	fs.StringVar(&c.s3.Region, "s3-region", "", "S3 region (default: from the AWS configuration, else us-east-1)")
	fs.BoolVar(&c.s3.PathStyle, "s3-path-style", false, "use path-style S3 addressing (MinIO and most S3-compatible stores)")
	fs.StringVar(&c.s3.CAFile, "s3-ca-file", "", "PEM file of CA certificates to trust for the S3 endpoint")
	fs.StringVar(&c.s3.SSE, "s3-sse", "", "server-side encryption: AES256 (SSE-S3) or aws:kms (SSE-KMS)")
	fs.StringVar(&c.s3.SSEKMSKeyID, "s3-sse-kms-key-id", "", "KMS key id for aws:kms server-side encryption")
	fs.StringVar(&c.s3.Checksum, "s3-checksum", "auto", "upload integrity check the store verifies: auto (CRC32C for AWS S3 and MinIO, else MD5), md5 (every S3-compatible store), crc32c, sha256, crc32 (the AWS SDK's default trailer; breaks some stores) or none")
	fs.StringVar(&c.compression, "compression", "zstd", "compression: "+strings.Join(codec.Compressions, ", "))
	fs.IntVar(&c.level, "compression-level", 0, "compression level (0: the codec's default)")
	fs.StringVar(&c.recipients, "encryption-recipient", "", "encrypt with age for these public keys (age1..., comma-separated)")
	fs.StringVar(&c.keyFile, "encryption-key-file", "", "age identity file: decrypts, and encrypts when no recipient is given")
	fs.StringVar(&c.repoKeyFile, "repo-key-file", "", "repository key file: a shared secret that authenticates every object (walship keygen writes one); set when the repository is created, then on every reader and writer")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "limit for one store call")
	fs.DurationVar(&c.retryBudget, "retry-budget", time.Minute, "total time to keep retrying a failing store call")
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "log every file shipped or fetched")
}

// commandEnv maps the settings of one command (by its path) to their
// environment variables: what a scheduler or a Pod sets once. Flags that
// name one run's object (a target, a backup ID, --json) have none.
var commandEnv = map[string]map[string]string{
	"walship backup": {
		"jobs":             "WALSHIP_BACKUP_JOBS",
		"fast-checkpoint":  "WALSHIP_BACKUP_FAST_CHECKPOINT",
		"wal-timeout":      "WALSHIP_BACKUP_WAL_TIMEOUT",
		"incomplete-grace": "WALSHIP_INCOMPLETE_GRACE",
	},
	"walship restore": {"jobs": "WALSHIP_RESTORE_JOBS", "archive-mode": "WALSHIP_RESTORE_ARCHIVE_MODE"},
	"walship verify":  {"jobs": "WALSHIP_VERIFY_JOBS"},
	"walship retention": {
		"recovery-window":  "WALSHIP_RETENTION_RECOVERY_WINDOW",
		"keep":             "WALSHIP_RETENTION_KEEP",
		"incomplete-grace": "WALSHIP_INCOMPLETE_GRACE",
		"yes":              "WALSHIP_RETENTION_APPLY",
	},
}

// oneOf are flags that are alternatives: when one of them is given on the
// command line, the environment sets none of them (a --keep given by hand
// replaces a recovery window set in the environment, not adds to it; a
// --dry-run by hand wins over WALSHIP_RETENTION_APPLY).
var oneOf = [][]string{{"recovery-window", "keep"}, {"dry-run", "yes"}}

// applyEnv fills every flag of cmd not given on the command line from its
// environment variable, and names the variable when its value is invalid.
func applyEnv(cmd *cobra.Command) error {
	fs := cmd.Flags()
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { onCommandLine[f.Name] = true })
	given := func(name string) bool {
		for _, group := range oneOf {
			if slices.Contains(group, name) {
				return slices.ContainsFunc(group, func(n string) bool { return onCommandLine[n] })
			}
		}
		return onCommandLine[name]
	}
	var errs []error
	fromEnv := map[string]string{} // flag: the variable that set it
	fs.VisitAll(func(f *pflag.Flag) {
		env, ok := commandEnv[cmd.CommandPath()][f.Name]
		if !ok {
			env, ok = envOf[f.Name]
		}
		if !ok || given(f.Name) {
			return
		}
		if v, set := os.LookupEnv(env); set && v != "" {
			fromEnv[f.Name] = env
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment variable %s=%q is invalid for --%s: %v", env, v, f.Name, err))
			}
		}
	})
	for _, group := range oneOf {
		var set []string
		for _, name := range group {
			if env, ok := fromEnv[name]; ok {
				set = append(set, env)
			}
		}
		if len(set) > 1 {
			errs = append(errs, fmt.Errorf("the environment sets %s, which are alternatives: set one (or give one of them as a flag)", strings.Join(set, " and ")))
		}
	}
	return errors.Join(errs...)
}

func (c *config) logger() *slog.Logger {
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// settings are the repository settings of the configuration: everything
// that opens the repository goes through them (see internal/repo).
func (c *config) settings() repo.Settings {
	return repo.Settings{
		URL: c.repo, S3: c.s3,
		Compression: c.compression, Level: c.level,
		Recipients: c.recipients, IdentityFile: c.keyFile, RepoKeyFile: c.repoKeyFile,
		CallTimeout: c.timeout, RetryBudget: c.retryBudget,
	}
}

// open opens the repository with its keys.
func (c *config) open(ctx context.Context) (*repo.Repository, error) {
	if c.repo == "" {
		return nil, errNoRepo
	}
	return c.settings().Open(ctx)
}

var errNoRepo = fmt.Errorf("%w: set WALSHIP_REPO or --repo to s3://bucket/prefix or file:///path", repo.ErrNoURL)

func (c *config) openStore(ctx context.Context) (storage.Store, error) {
	if c.repo == "" {
		return nil, errNoRepo
	}
	return c.settings().OpenStore(ctx)
}

func (c *config) encoder() (*codec.Encoder, error) { return c.settings().Encoder() }

// repoKey is the secret of the repository key file, nil without one.
func (c *config) repoKey() ([]byte, error) { return c.settings().Key() }

// protection is what the configuration holds to protect the repository.
func (c *config) protection() (catalog.Protection, []age.Identity, error) {
	return c.settings().Protection()
}

// reader opens the repository and the decoder for what it holds: what
// every command that reads from the repository starts with. The decoder
// enforces the repository's protection (see catalog.Identity.Verify), so
// the identity record is read first; id is nil when there is none yet.
func (c *config) reader(ctx context.Context) (st storage.Store, dec *codec.Decoder, id *catalog.Identity, err error) {
	if st, err = c.openStore(ctx); err != nil {
		return nil, nil, nil, err
	}
	dec, id, err = c.decoderFor(ctx, st)
	return st, dec, id, err
}

// decoderFor reads st's identity record, checks it against the
// configuration and returns the decoder its objects need.
func (c *config) decoderFor(ctx context.Context, st storage.Store) (*codec.Decoder, *catalog.Identity, error) {
	p, ids, err := c.protection()
	if err != nil {
		return nil, nil, err
	}
	return repo.DecoderFor(ctx, st, p, ids)
}

// shipper prepares the WAL push pipeline from walDir to the repository.
func (c *config) shipper(ctx context.Context, walDir string) (*archiver.Shipper, error) {
	r, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	return r.Shipper(walDir, c.walParallel, c.logger())
}

// agentTarget names what a wal-push asks the agent to do: the repository
// and every setting that decides how objects are protected, so that an
// agent configured otherwise (no encryption, another endpoint or key)
// refuses instead of storing what this wal-push would not.
func (c *config) agentTarget() string { return c.settings().AgentTarget() }
