package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/internal/fault"
)

// noCredentials is the whole advice for a credential chain that found nothing.
const noCredentials = "no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE"

// s3Store keeps objects under bucket/prefix of an S3 or S3-compatible store.
type s3Store struct {
	client *s3.Client
	creds  aws.CredentialsProvider
	bucket string
	prefix string // "" or ending in "/"
	opts   S3Options
	// crc32c is what "auto" mode knows of the store: crc32cUnknown (MD5),
	// crc32cVerified (it showed it is one that verifies
	// x-amz-checksum-crc32c: AWS S3 or MinIO, by its Server header) or
	// crc32cRefused (it failed to echo one back: MD5 from then on). CRC32C
	// costs a fraction of MD5's CPU, which matters at hundreds of MB/s.
	crc32c atomic.Int32
	probe  sync.Once // asks the store who it is before the first put
	// oneByOne: the store refused a DeleteObjects request (some
	// S3-compatible stores lack it); delete one object per request.
	oneByOne atomic.Bool
}

const (
	crc32cUnknown = iota
	crc32cVerified
	crc32cRefused
)

func newS3Store(ctx context.Context, bucket, prefix string, o S3Options) (*s3Store, error) {
	switch o.Checksum {
	case "":
		o.Checksum = "auto"
	case "auto", "md5", "crc32c", "sha256", "crc32", "none":
	default:
		return nil, fmt.Errorf("unknown S3 checksum %q: use auto (default), md5, crc32c, sha256, crc32 or none", o.Checksum)
	}
	switch o.SSE {
	case "", string(types.ServerSideEncryptionAes256), string(types.ServerSideEncryptionAwsKms):
	default:
		return nil, fmt.Errorf("unknown S3 server-side encryption %q: use AES256 (SSE-S3) or aws:kms (SSE-KMS)", o.SSE)
	}
	if o.SSEKMSKeyID != "" && o.SSE != string(types.ServerSideEncryptionAwsKms) {
		return nil, fmt.Errorf("an SSE-KMS key ID needs S3 server-side encryption aws:kms")
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("S3 endpoint %q is not a URL: use http://host:port or https://host:port", o.Endpoint)
		}
	}

	load := []func(*config.LoadOptions) error{
		// Retries live in the retry wrapper, with one budget for all backends.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	if o.Checksum != "crc32" {
		// The SDK's newer default adds CRC32 trailers with aws-chunked
		// encoding, which several S3-compatible stores reject. We choose the
		// checksum ourselves instead.
		load = append(load,
			config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	if o.CAFile != "" || len(o.CAPEM) > 0 {
		pool, err := caPool(o.CAFile, o.CAPEM)
		if err != nil {
			return nil, err
		}
		client := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.RootCAs = pool
		})
		load = append(load, config.WithHTTPClient(client))
	}
	if c := o.Credentials; c.Set() {
		if c.SecretAccessKey == "" {
			return nil, fmt.Errorf("S3 credentials for s3://%s: access key %s has no secret access key", bucket, c.AccessKeyID)
		}
		load = append(load, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for s3://%s: %w", bucket, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // MinIO and most S3-compatible stores accept it
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
	})
	if prefix != "" {
		prefix += "/"
	}
	return &s3Store{client: client, creds: cfg.Credentials, bucket: bucket, prefix: prefix, opts: o}, nil
}

// caPool trusts exactly the certificates in the PEM file, as the AWS SDK's
// AWS_CA_BUNDLE does: the file names the endpoint's CA, and loading the
// system's hundreds of roots as well costs every short-lived process ~30 ms.
// Without a path, the bundle is pem.
func caPool(path string, pem []byte) (*x509.CertPool, error) {
	name := "given"
	if path != "" {
		var err error
		if pem, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("cannot read the S3 CA bundle: %w", err)
		}
		name = path
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the S3 CA bundle %s holds no PEM certificate", name)
	}
	return pool, nil
}

// Location is the URL and the endpoint (empty for AWS).
func (s *s3Store) Location() string { return s.String() + " at " + s.opts.Endpoint }

func (s *s3Store) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

func (s *s3Store) url(key string) string { return "s3://" + s.bucket + "/" + s.prefix + key }

func (s *s3Store) endpoint() string {
	if s.opts.Endpoint != "" {
		return s.opts.Endpoint
	}
	return "AWS S3"
}

// ready makes sure the credential chain yields something before a call, so a
// missing configuration gets advice instead of a signing error. The SDK
// caches credentials, so this costs nothing after the first call.
func (s *s3Store) ready(ctx context.Context) error {
	if s.creds == nil {
		return permanent(nil, noCredentials)
	}
	if _, err := s.creds.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("loading S3 credentials: %w", err)
		}
		if os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "" && strings.Contains(err.Error(), "AssumeRoleWithWebIdentity") {
			// Credentials were configured; STS turned them down.
			return permanent(err, "STS rejected the web identity token in AWS_WEB_IDENTITY_TOKEN_FILE for role AWS_ROLE_ARN=%q: check the role's trust policy, the token's audience and that the token is current", os.Getenv("AWS_ROLE_ARN"))
		}
		return permanent(err, noCredentials)
	}
	return nil
}

// codes extracts the S3 error code and HTTP status, when the server answered.
func codes(err error) (code string, status int) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	return code, status
}

// mapErr sorts an SDK error into ErrNotFound, ErrPermanent (with advice) or a
// transient error (network, 5xx, throttling, BadDigest, timeouts). Messages
// name bucket and key but never credentials.
func (s *s3Store) mapErr(op, key string, err error) error {
	code, status := codes(err)
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		return permanent(err, "the TLS certificate of S3 endpoint %s is not trusted: give its CA bundle (S3 CA file option) or fix the endpoint", s.endpoint())
	case code == "NoSuchBucket":
		return permanentSetting(nil, []error{fault.ErrRepositoryMissing}, RepositoryURL,
			"S3 bucket %q does not exist at %s: create it or fix the %s", s.bucket, s.endpoint(), RepositoryURL)
	case code == "InvalidBucketName":
		return permanentSetting(err, nil, RepositoryURL, "%q is not a valid S3 bucket name: fix the %s", s.bucket, RepositoryURL)
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed":
		// AWS answers so when the bucket lives in another region.
		return permanent(err, "S3 bucket %q is not reachable in region %q: set AWS_REGION to the bucket's region", s.bucket, s.client.Options().Region)
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
		(status == http.StatusForbidden && code != "RequestTimeTooSkewed"):
		return permanent(err, "access to S3 bucket %q denied (%s %s): %s", s.bucket, op, s.url(key), s.deniedAdvice(op, code))
	case code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", op, s.url(key), ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, s.url(key), err)
}

// deniedAdvice says what to fix after a 403, by what was refused. A 403 is
// never taken for "not found", even where it may mean just that: AWS answers
// a read of a missing object with 403 instead of 404 when the credentials
// may not list the bucket, and then every probe PostgreSQL makes for a file
// that does not exist (history files of future timelines) stops recovery
// until s3:ListBucket is granted.
func (s *s3Store) deniedAdvice(op, code string) string {
	const wrong = "the credentials are wrong or lack permission for this bucket"
	if code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" {
		return wrong
	}
	bucketARN := "arn:aws:s3:::" + s.bucket
	objectsARN := bucketARN + "/" + s.prefix + "*"
	switch op {
	case "get", "stat":
		return fmt.Sprintf("%s: reading needs s3:GetObject on %s, and if the object may be missing, s3:ListBucket on %s: "+
			"without it S3 answers 403 instead of 404 for a missing object", wrong, objectsARN, bucketARN)
	case "list":
		return fmt.Sprintf("%s: listing needs s3:ListBucket on %s", wrong, bucketARN)
	case "put":
		return fmt.Sprintf("%s: writing needs s3:PutObject on %s", wrong, objectsARN)
	case "put (confirming)":
		return fmt.Sprintf("%s: confirming a write needs s3:GetObject on %s", wrong, objectsARN)
	case "delete":
		return fmt.Sprintf("%s: deleting needs s3:DeleteObject on %s", wrong, objectsARN)
	}
	return wrong
}

func (s *s3Store) Put(ctx context.Context, key string, body []byte, opts PutOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
		// A seekable body of known length: the SDK can sign and resend it
		// without aws-chunked encoding.
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if s.opts.Checksum == "auto" {
		// wal-push is a new process per segment whose first uploads start
		// together: learn the store's kind before them, not from their
		// answers, or every one of them would pay for MD5.
		s.probe.Do(func() { s.probeStore(ctx) })
	}
	// The server recomputes the checksum and rejects a mismatch (BadDigest),
	// so a stored object is the bytes we hold.
	useCRC32C := s.opts.Checksum == "crc32c" || (s.opts.Checksum == "auto" && s.crc32c.Load() == crc32cVerified)
	switch {
	case useCRC32C:
		in.ChecksumCRC32C = aws.String(crc32cBase64(body))
	case s.opts.Checksum == "md5" || s.opts.Checksum == "auto":
		sum := md5.Sum(body)
		in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	case s.opts.Checksum == "sha256":
		sum := sha256.Sum256(body)
		in.ChecksumAlgorithm = types.ChecksumAlgorithmSha256
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	case s.opts.Checksum == "crc32":
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	if s.opts.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.opts.SSE)
		if s.opts.SSEKMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(s.opts.SSEKMSKeyID)
		}
	}
	if opts.IfNotExists {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		code, status := codes(err)
		if opts.IfNotExists && (status == http.StatusPreconditionFailed || code == "PreconditionFailed" ||
			status == http.StatusConflict || code == "ConditionalRequestConflict") {
			return fmt.Errorf("put %s: %w", s.url(key), ErrExists)
		}
		return s.mapErr("put", key, err)
	}
	// Read after write: the object must be visible with the size we sent
	// (and, for CRC32C, carry the checksum the store computed).
	headIn := &s3.HeadObjectInput{Bucket: in.Bucket, Key: in.Key}
	if useCRC32C {
		headIn.ChecksumMode = types.ChecksumModeEnabled
	}
	head, err := s.client.HeadObject(ctx, headIn)
	if err != nil {
		err = s.mapErr("put (confirming)", key, err)
		if errors.Is(err, ErrNotFound) {
			// Not ErrNotFound to callers: the put is unconfirmed, retry it.
			return fmt.Errorf("put %s: the store accepted the object but does not show it", s.url(key))
		}
		return err
	}
	if got := aws.ToInt64(head.ContentLength); got != int64(len(body)) {
		return fmt.Errorf("put %s: the store reports %d bytes after we wrote %d", s.url(key), got, len(body))
	}
	s.learn(head.ResultMetadata)
	if useCRC32C && aws.ToString(head.ChecksumCRC32C) != aws.ToString(in.ChecksumCRC32C) {
		// A store that ignores x-amz-checksum-crc32c stored the object
		// unverified. Send it again with Content-MD5, which every store
		// checks (the object is ours now: no precondition).
		if s.opts.Checksum == "crc32c" {
			return permanent(nil, "S3 store %s does not verify CRC32C checksums (put %s): use the md5 checksum", s.endpoint(), s.url(key))
		}
		s.crc32c.Store(crc32cRefused)
		return s.Put(ctx, key, body, PutOptions{})
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32cBase64 is the value of an x-amz-checksum-crc32c header: the
// big-endian CRC32C, base64-encoded.
func crc32cBase64(body []byte) string {
	sum := crc32.Checksum(body, castagnoli)
	return base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
}

// probeStore learns the store's kind from the answer to a HEAD of the
// bucket, a refusal included (a write-only key may not list the bucket).
func (s *s3Store) probeStore(ctx context.Context) {
	out, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		s.learn(out.ResultMetadata)
		return
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		s.learnServer(respErr.Response.Header.Get("Server"))
	}
}

// learn reads the Server header of an answer (see learnServer).
func (s *s3Store) learn(meta middleware.Metadata) {
	if resp, ok := awsmiddleware.GetRawResponse(meta).(*smithyhttp.Response); ok {
		s.learnServer(resp.Header.Get("Server"))
	}
}

// learnServer notes, in "auto" mode, whether the store answering is one
// known to verify x-amz-checksum-crc32c on upload: AWS S3 and MinIO say so
// in their Server header. Until one of them answered, uploads carry
// Content-MD5; a store that once failed to echo a CRC32C keeps MD5.
func (s *s3Store) learnServer(server string) {
	if s.opts.Checksum == "auto" && (server == "AmazonS3" || server == "MinIO") {
		s.crc32c.CompareAndSwap(crc32cUnknown, crc32cVerified)
	}
}

func (s *s3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		return nil, s.mapErr("get", key, err)
	}
	return out.Body, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := s.ready(ctx); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		err = s.mapErr("stat", key, err)
		// HEAD answers carry no error code, so a missing bucket looks like a
		// missing object. Ask once more: "not in the archive" must not hide
		// a wrong repository.
		if errors.Is(err, ErrNotFound) {
			if _, berr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); berr != nil {
				if _, status := codes(berr); status == http.StatusNotFound {
					return ObjectInfo{}, s.mapErr("stat", key, &smithy.GenericAPIError{Code: "NoSuchBucket"})
				}
			}
		}
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	objs, _, err := s.list(ctx, prefix, "")
	return objs, err
}

func (s *s3Store) ListDir(ctx context.Context, dir string) ([]ObjectInfo, []string, error) {
	if err := checkDir(dir); err != nil {
		return nil, nil, err
	}
	return s.list(ctx, dir, "/")
}

// list pages through the objects under prefix; with a delimiter, keys that
// go on past it come back once each as a folder (S3's common prefixes).
func (s *s3Store) list(ctx context.Context, prefix, delimiter string) ([]ObjectInfo, []string, error) {
	if err := s.ready(ctx); err != nil {
		return nil, nil, err
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	var objs []ObjectInfo
	var dirs []string
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, nil, s.mapErr("list", prefix, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if strings.HasSuffix(key, "/") {
				continue // a "folder" marker some tools create, not an object
			}
			objs = append(objs, ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
		for _, p := range page.CommonPrefixes {
			dirs = append(dirs, strings.TrimPrefix(aws.ToString(p.Prefix), s.prefix))
		}
	}
	// S3 lists in UTF-8 byte order already; S3-compatible stores may not.
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	slices.Sort(dirs)
	return objs, dirs, nil
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		if err = s.mapErr("delete", key, err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// DeleteMany sends one DeleteObjects request. A store without it gets one
// DeleteObject per key, deleteInFlight at a time, from then on; so does a
// store configured for MD5 checksums, since DeleteObjects must carry a
// checksum and the SDK sends CRC32, which such stores may not know.
func (s *s3Store) DeleteMany(ctx context.Context, keys []string) error {
	if len(keys) > MaxDeleteBatch {
		return permanent(nil, "%d keys in one batch delete, the most is %d", len(keys), MaxDeleteBatch)
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	if s.opts.Checksum != "md5" && !s.oneByOne.Load() {
		err := s.deleteObjects(ctx, keys)
		if !noBatchDelete(err) {
			return err
		}
		s.oneByOne.Store(true)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteInFlight)
	for _, k := range keys {
		g.Go(func() error { return s.Delete(gctx, k) })
	}
	return g.Wait()
}

// deleteInFlight: concurrent single deletes on a store without DeleteObjects.
const deleteInFlight = 16

func (s *s3Store) deleteObjects(ctx context.Context, keys []string) error {
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(s.prefix + k)}
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.bucket),
		// Quiet: the answer lists only the keys that failed.
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if noBatchDelete(err) {
		return err // DeleteMany falls back
	}
	if err != nil {
		return s.mapErr("delete", fmt.Sprintf("%s (and %d more)", keys[0], len(keys)-1), err)
	}
	for _, e := range out.Errors {
		code := aws.ToString(e.Code)
		if code == "NoSuchKey" {
			continue
		}
		err := fmt.Errorf("delete %s: %s: %s (%d of %d keys failed)", s.url(strings.TrimPrefix(aws.ToString(e.Key), s.prefix)),
			code, aws.ToString(e.Message), len(out.Errors), len(keys))
		if code == "AccessDenied" {
			return permanent(err, "no permission to delete in %s: grant s3:DeleteObject", s)
		}
		// InternalError, SlowDown, ...: retried like a failed request;
		// deleting again what is gone is harmless.
		return err
	}
	return nil
}

// noBatchDelete tells a store that lacks DeleteObjects (or wants the
// Content-MD5 the SDK no longer sends) from other failures.
func noBatchDelete(err error) bool {
	if err == nil {
		return false
	}
	code, status := codes(err)
	return status == http.StatusNotImplemented || status == http.StatusMethodNotAllowed ||
		code == "NotImplemented" || code == "MethodNotAllowed" || code == "MissingContentMD5"
}
