// Package repo holds a repository's settings as a value: everything that
// opens a repository (its URL, the S3 endpoint, region, addressing, CA and
// credentials, the age keys, the repository key, compression and timeouts),
// so that the CLI, the agent, the instance manager and the tests open a
// repository the same way. Settings are plain data; two of them (a cluster's
// own repository and its source's) can be open in one process, each with its
// own credentials.
//
// Key material comes either as file paths (the CLI) or as bytes (Secrets,
// never written to disk). Printing Settings (%v, %+v, %#v, slog) never shows
// a secret.
package repo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/archiver"
	"github.com/walship/walship/internal/agentsock"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/shorthash"
	"github.com/walship/walship/internal/storage"
)

// Settings open one repository.
type Settings struct {
	// URL is the repository: s3://bucket/prefix or file:///path.
	URL string
	// S3 holds the endpoint, region, path style, CA, server-side encryption,
	// checksum and credentials of an s3:// URL (see storage.S3Options; no
	// static credentials means the AWS SDK's default chain).
	S3 storage.S3Options

	// Compression of what is written (codec.Compressions), and its level
	// (0: the codec's default).
	Compression string
	Level       int

	// Recipients are age public keys (age1..., comma- or space-separated)
	// to encrypt for.
	Recipients string
	// The age identity that decrypts (and, without recipients, encrypts):
	// a file (IdentityFile) or its contents (Identity, named in errors by
	// IdentitySource, such as
	// "Secret x key y"). The file wins when both are set.
	IdentityFile   string
	Identity       []byte
	IdentitySource string
	// The repository key that authenticates every object: a key file
	// (RepoKeyFile) or its contents (RepoKey, named in errors by
	// RepoKeySource). The file wins when both are set.
	RepoKeyFile   string
	RepoKey       []byte
	RepoKeySource string

	// CallTimeout bounds one store call, RetryBudget the retries of one
	// operation (zero: storage's defaults).
	CallTimeout time.Duration
	RetryBudget time.Duration
}

// StoreOptions are the storage options of the settings.
func (s Settings) StoreOptions() storage.Options {
	return storage.Options{S3: s.S3, CallTimeout: s.CallTimeout, RetryBudget: s.RetryBudget}
}

// OpenStore opens the repository's store; it contacts nothing yet.
func (s Settings) OpenStore(ctx context.Context) (storage.Store, error) {
	return storage.Open(ctx, s.URL, s.StoreOptions())
}

// Keys loads the age recipients that encrypt and identities that decrypt.
func (s Settings) Keys() ([]age.Recipient, []age.Identity, error) {
	if s.IdentityFile != "" || len(s.Identity) == 0 {
		return codec.Keys(s.Recipients, s.IdentityFile)
	}
	return codec.KeysWithIdentity(s.Recipients, s.Identity, "encryption key "+from(s.IdentitySource))
}

// Encoder is the encoder of what is written, before any repository key (see
// catalog.Identity.Encoder).
func (s Settings) Encoder() (*codec.Encoder, error) {
	if err := codec.CheckCompression(s.Compression); err != nil {
		return nil, err
	}
	enc, _, _, err := s.load()
	return enc, err
}

// load reads the key material once: the encoder (its compression not
// checked: readers need none), the protection and the identities that
// decrypt.
func (s Settings) load() (*codec.Encoder, catalog.Protection, []age.Identity, error) {
	rs, ids, err := s.Keys()
	if err != nil {
		return nil, catalog.Protection{}, nil, err
	}
	key, err := s.Key()
	if err != nil {
		return nil, catalog.Protection{}, nil, err
	}
	enc := &codec.Encoder{Compression: s.Compression, Level: s.Level, Recipients: rs}
	return enc, catalog.Protection{Encrypts: len(rs) > 0, Decrypts: len(ids) > 0, Key: key}, ids, nil
}

// SettingRepoKeyFile is Settings.RepoKeyFile, as messages name it (see
// fault.Setting).
const SettingRepoKeyFile fault.Setting = "repository key file"

// Key is the secret of the repository key, nil without one.
func (s Settings) Key() ([]byte, error) {
	switch {
	case s.RepoKeyFile != "":
		key, err := codec.LoadRepositoryKey(s.RepoKeyFile)
		if err != nil {
			// The message names the file; its caller says how it is set.
			return nil, fault.Settingf(SettingRepoKeyFile, "%w", err)
		}
		return key, nil
	case len(s.RepoKey) > 0:
		return codec.ParseRepositoryKey(s.RepoKey, "repository key "+from(s.RepoKeySource))
	}
	return nil, nil
}

// Protection is what the settings hold to protect the repository, with the
// identities that decrypt.
func (s Settings) Protection() (catalog.Protection, []age.Identity, error) {
	_, p, ids, err := s.load()
	return p, ids, err
}

// AgentTarget names what a wal-push asks the agent to do: the repository
// and every setting that decides how objects are protected, so that an
// agent configured otherwise refuses (see agentsock.Target). Keys given as
// bytes count by a hash of their contents.
func (s Settings) AgentTarget() string {
	return agentsock.Target(s.URL, s.S3.Endpoint, s.Recipients, keyName(s.IdentityFile, s.Identity), keyName(s.RepoKeyFile, s.RepoKey))
}

func keyName(file string, contents []byte) string {
	if file != "" || len(contents) == 0 {
		return file
	}
	return "contents-" + shorthash.Of(string(contents))
}

// from names where key material given as bytes came from.
func from(src string) string {
	if src == "" {
		return "given"
	}
	return "from " + src
}

// String describes the settings without any secret: what logs and error
// messages may show.
func (s Settings) String() string {
	var b strings.Builder
	b.WriteString(s.URL)
	if s.URL == "" {
		b.WriteString("(no repository URL)")
	}
	if s.S3.Endpoint != "" {
		b.WriteString(" at " + s.S3.Endpoint)
	}
	var parts []string
	add := func(format string, a ...any) { parts = append(parts, fmt.Sprintf(format, a...)) }
	if s.S3.Region != "" {
		add("region %s", s.S3.Region)
	}
	if s.S3.PathStyle {
		add("path style")
	}
	if s.S3.CAFile != "" {
		add("CA file %s", s.S3.CAFile)
	} else if len(s.S3.CAPEM) > 0 {
		add("CA given")
	}
	if strings.HasPrefix(s.URL, "s3://") || s.S3.Credentials.Set() {
		add("credentials: %s", s.S3.Credentials)
	}
	if s.Compression != "" {
		add("compression %s", s.Compression)
	}
	if s.Recipients != "" {
		add("encrypting for %d age recipient(s)", len(strings.FieldsFunc(s.Recipients, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })))
	}
	if k := describeKey(s.IdentityFile, s.Identity, s.IdentitySource); k != "" {
		add("age identity %s", k)
	}
	if k := describeKey(s.RepoKeyFile, s.RepoKey, s.RepoKeySource); k != "" {
		add("repository key %s", k)
	}
	if len(parts) > 0 {
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}

func describeKey(file string, contents []byte, src string) string {
	switch {
	case file != "":
		return "file " + file
	case len(contents) > 0:
		return from(src)
	}
	return ""
}

// GoString is String, so that %#v hides the secrets too.
func (s Settings) GoString() string { return "repo.Settings{" + s.String() + "}" }

// LogValue is String, for slog.
func (s Settings) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Repository is an open repository: its store, and what its settings hold to
// encode and decode its objects.
type Repository struct {
	settings Settings
	store    storage.Store
	enc      *codec.Encoder
	prot     catalog.Protection
	ids      []age.Identity
}

// Open opens the store and loads the keys. It contacts nothing: the
// identity record is read by Reader, and a wrong credential shows at the
// first store call.
func (s Settings) Open(ctx context.Context) (*Repository, error) {
	st, err := s.OpenStore(ctx)
	if err != nil {
		return nil, err
	}
	if err := codec.CheckCompression(s.Compression); err != nil {
		return nil, err
	}
	enc, p, ids, err := s.load()
	if err != nil {
		return nil, err
	}
	return &Repository{settings: s, store: st, enc: enc, prot: p, ids: ids}, nil
}

// Settings are the settings the repository was opened with.
func (r *Repository) Settings() Settings { return r.settings }

// Store is the repository's store.
func (r *Repository) Store() storage.Store { return r.store }

// Encoder is the encoder of what is written, before the repository key
// (archiver.Shipper and backups add it, see catalog.Identity.Encoder).
func (r *Repository) Encoder() *codec.Encoder { e := *r.enc; return &e }

// Protection is what the settings hold to protect the repository.
func (r *Repository) Protection() catalog.Protection { return r.prot }

// RepoKey is the secret of the repository key, nil without one.
func (r *Repository) RepoKey() []byte { return r.prot.Key }

// AgentTarget is Settings.AgentTarget.
func (r *Repository) AgentTarget() string { return r.settings.AgentTarget() }

// String is the settings' String.
func (r *Repository) String() string { return r.settings.String() }

// Reader reads the repository's identity record, checks it against the
// settings and returns the decoder its objects need; id is nil when there
// is no record yet.
func (r *Repository) Reader(ctx context.Context) (*codec.Decoder, *catalog.Identity, error) {
	return DecoderFor(ctx, r.store, r.prot, r.ids)
}

// Shipper prepares the WAL push pipeline from walDir to the repository.
func (r *Repository) Shipper(walDir string, parallel int, log *slog.Logger) (*archiver.Shipper, error) {
	sh, err := archiver.NewShipper(r.store, r.Encoder(), walDir, parallel, log)
	if err != nil {
		return nil, err
	}
	sh.RepoKey = r.prot.Key
	return sh, nil
}

// DecoderFor reads st's identity record, checks it against p and returns
// the decoder st's objects need, decrypting with ids; the identity is nil
// when there is no record yet. The decoder enforces the repository's
// protection (see catalog.Identity.Verify).
func DecoderFor(ctx context.Context, st storage.Store, p catalog.Protection, ids []age.Identity) (*codec.Decoder, *catalog.Identity, error) {
	base := &codec.Decoder{Identities: ids}
	id, err := catalog.OpenIdentity(ctx, st, p)
	switch {
	case errors.Is(err, storage.ErrNotFound) && p.Key != nil:
		return nil, nil, fmt.Errorf("%s has no identity record (%s) to check the repository key against: the repository is missing, or nothing was archived there yet", st, catalog.IdentityKey)
	case errors.Is(err, storage.ErrNotFound):
		// Nothing claimed the repository yet: a reader that can decrypt
		// still accepts encrypted objects only.
		base.RequireEncryption = p.Decrypts
		return base, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return id.Decoder(base, p), &id, nil
}

// GoString hides the secrets from %#v too.
func (r *Repository) GoString() string { return "repo.Repository{" + r.String() + "}" }
