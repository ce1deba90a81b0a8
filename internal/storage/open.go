package storage

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/walship/walship/internal/fault"
)

// Options configures Open. Zero values mean sensible defaults.
type Options struct {
	S3 S3Options

	// CallTimeout bounds one store call (a whole Put, or opening a Get plus
	// reading its body). Default 2m.
	CallTimeout time.Duration
	// RetryBudget bounds the total time spent retrying one operation,
	// backoff included. Default 1m. Zero attempts past the budget.
	RetryBudget time.Duration
	// MaxAttempts bounds attempts per operation. Default 8.
	MaxAttempts int
}

// S3Options are the s3:// settings that the AWS SDK's own variables do not cover.
// Credentials, profiles and web-identity tokens come from the SDK's default
// chain, unless Credentials holds static keys.
type S3Options struct {
	Endpoint  string // e.g. http://127.0.0.1:9000 for MinIO; empty for AWS
	Region    string // default: SDK chain, else us-east-1
	PathStyle bool   // path-style addressing (MinIO and most S3-compatible stores)
	CAFile    string // PEM bundle to trust instead of the system roots
	CAPEM     []byte // the same as bytes (from a Secret); used when CAFile is empty
	// Credentials, when its access key id is set, are used instead of the
	// SDK's default chain: two stores in one process can then use different
	// keys.
	Credentials S3Credentials
	// SSE: "" (none), "AES256" (SSE-S3) or "aws:kms" (SSE-KMS, with SSEKMSKeyID).
	SSE         string
	SSEKMSKeyID string
	// Checksum selects how uploads are verified by the server:
	// "auto" (the default: x-amz-checksum-crc32c when the Server header of
	// the store's answer to a HEAD of the bucket, or should that fail to an
	// upload's confirming HEAD, shows AWS S3 or MinIO; Content-MD5
	// otherwise. CRC32C is confirmed on each upload by the checksum the
	// store reports back),
	// "md5" (Content-MD5; every S3-compatible store),
	// "crc32c" (x-amz-checksum-crc32c; AWS, MinIO),
	// "sha256" (x-amz-checksum-sha256; AWS, MinIO, recent Ceph),
	// "crc32" (the SDK's newer default trailing checksum; breaks some stores),
	// "none".
	Checksum string
}

// S3Credentials are static S3 keys. Printing them (%v, %+v, %#v, %s) shows
// the access key id only.
type S3Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // for temporary credentials; may be empty
}

// Set says whether the credentials replace the SDK's default chain.
func (c S3Credentials) Set() bool { return c.AccessKeyID != "" }

// String names the access key id and hides the secrets.
func (c S3Credentials) String() string {
	if !c.Set() {
		return "the AWS SDK's default credentials"
	}
	s := "access key " + c.AccessKeyID + " (secret hidden"
	if c.SessionToken != "" {
		s += ", session token hidden"
	}
	return s + ")"
}

// GoString is String, so that %#v hides the secrets too.
func (c S3Credentials) GoString() string { return c.String() }

// Defaults applied by Open to zero (or negative) Options fields.
const (
	DefaultCallTimeout = 2 * time.Minute
	DefaultRetryBudget = time.Minute
	DefaultMaxAttempts = 8
)

// withDefaults fills zero fields so the wrappers never see a zero bound.
func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.RetryBudget <= 0 {
		o.RetryBudget = DefaultRetryBudget
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	return o
}

// acceptedForms ends every URL error, so the fix is always in the message.
const acceptedForms = "use s3://bucket/prefix or file:///absolute/path"

// Open turns a repository URL into a Store: the backend for its scheme,
// wrapped as retry(timeout(backend)) so every attempt has its own deadline and
// the retry budget spans all attempts.
//
// Accepted forms: s3://bucket[/prefix], file:///absolute/path, or a bare
// absolute path. Open does no I/O for file:// (the root is created by the
// first Put); for s3:// it loads the AWS configuration but contacts nothing.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	opts = opts.withDefaults()
	backend, err := openBackend(ctx, rawURL, opts)
	if err != nil {
		return nil, err
	}
	return WithRetry(WithTimeout(backend, opts.CallTimeout), opts.RetryBudget, opts.MaxAttempts), nil
}

func openBackend(ctx context.Context, rawURL string, opts Options) (Store, error) {
	if rawURL == "" {
		return nil, fault.Settingf(RepositoryURL, "no %s given: %s", RepositoryURL, acceptedForms)
	}
	if strings.HasPrefix(rawURL, "/") {
		return newFileStore(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" {
		return nil, fmt.Errorf("unsupported repository URL %q: %s", redact(rawURL), acceptedForms)
	}
	// The URL is echoed in errors; never echo a password someone put in it.
	shown := u.Redacted()
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("repository URL %q names host %q: a file URL needs an absolute path with three slashes, file:///absolute/path", shown, u.Host)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("repository URL %q has no absolute path: %s", shown, acceptedForms)
		}
		return newFileStore(u.Path)
	case "s3":
		if u.User != nil {
			return nil, fmt.Errorf("repository URL %q contains credentials: put them in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile, not in the URL", shown)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("repository URL %q has no bucket: %s", shown, acceptedForms)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix != "" {
			if err := checkKey(prefix); err != nil {
				return nil, fmt.Errorf("repository URL %q: bad prefix: %w", shown, err)
			}
		}
		return newS3Store(ctx, u.Host, prefix, opts.S3)
	default:
		return nil, fmt.Errorf("unsupported repository URL %q: %s", shown, acceptedForms)
	}
}

// redact hides anything between "://" and "@" in a URL that url.Parse
// rejected, in case it held credentials.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return raw
}
