package storage

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/walship/walship/internal/fault"
)

// minioClient is an independent S3 client, to set up buckets and to check
// what walship really stored.
func minioClient(t *testing.T, m *testMinio, caPEM []byte) *minio.Client {
	t.Helper()
	u, _ := url.Parse(m.Endpoint)
	opts := &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioPassword, ""), Secure: u.Scheme == "https"}
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		opts.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	mc, err := minio.New(u.Host, opts)
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func makeBucket(t *testing.T, mc *minio.Client, name string) {
	t.Helper()
	if err := mc.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}

// useMinioCredentials hands the root user to walship through the SDK's
// standard variables, as a user would.
func useMinioCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", minioUser)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minioPassword)
}

func s3Opts(m *testMinio) Options {
	return Options{S3: S3Options{Endpoint: m.Endpoint, PathStyle: true}, RetryBudget: 2 * time.Second, CallTimeout: 10 * time.Second}
}

func openS3(t *testing.T, url string, opts Options) Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return s
}

func TestS3(t *testing.T) {
	hermeticAWS(t)
	m := startMinio(t, "", nil)
	mc := minioClient(t, m, nil)
	makeBucket(t, mc, "walship")
	useMinioCredentials(t)
	ctx := context.Background()

	t.Run("contract", func(t *testing.T) {
		s := openS3(t, "s3://walship/cluster-a/", s3Opts(m))
		if s.String() != "s3://walship/cluster-a" {
			t.Errorf("String() = %q", s.String())
		}
		testStoreContract(t, s)
		// The root prefix is where the objects really are.
		obj, err := mc.GetObject(ctx, "walship", "cluster-a/backups/b1/manifest.json", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(obj); err != nil || string(b) != "body of backups/b1/manifest.json" {
			t.Fatalf("read back with minio-go: %q, %v", b, err)
		}
	})

	t.Run("checksums", func(t *testing.T) {
		body := make([]byte, 3<<20+17)
		rand.Read(body)
		for _, mode := range []string{"", "auto", "md5", "crc32c", "sha256", "crc32", "none"} {
			opts := s3Opts(m)
			opts.S3.Checksum = mode
			s := openS3(t, "s3://walship/ck-"+mode, opts)
			// "auto" uses MD5 until MinIO has answered once: the second put
			// is the one that carries CRC32C.
			for range 2 {
				if err := s.Put(ctx, "obj", body, PutOptions{}); err != nil {
					t.Fatalf("%q: put: %v", mode, err)
				}
			}
			if got := readAll(t, s, "obj"); got != string(body) {
				t.Fatalf("%q: walship read back different bytes", mode)
			}
			obj, err := mc.GetObject(ctx, "walship", "ck-"+mode+"/obj", minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(obj); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%q: minio-go read back different bytes: %v", mode, err)
			}
			info, err := mc.StatObject(ctx, "walship", "ck-"+mode+"/obj", minio.StatObjectOptions{Checksum: true})
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(body)
			if mode == "sha256" && info.ChecksumSHA256 != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Errorf("sha256: server stored checksum %q", info.ChecksumSHA256)
			}
			if mode == "crc32" && info.ChecksumCRC32 == "" {
				t.Errorf("crc32: server stored no CRC32 checksum")
			}
			if (mode == "" || mode == "auto" || mode == "crc32c") && info.ChecksumCRC32C != crc32cBase64(body) {
				t.Errorf("%q: server stored CRC32C %q, want %q", mode, info.ChecksumCRC32C, crc32cBase64(body))
			}
		}
	})

	t.Run("checksum headers", func(t *testing.T) {
		// What goes on the wire: one checksum of our choosing, no trailers or
		// aws-chunked encoding unless crc32 asks for the SDK's behaviour.
		for mode, want := range map[string]string{"md5": "Content-Md5", "crc32c": "X-Amz-Checksum-Crc32c", "sha256": "X-Amz-Checksum-Sha256", "crc32": "X-Amz-Checksum-Crc32", "none": ""} {
			rec := &recordingClient{}
			s := recordedStore(t, S3Options{Endpoint: m.Endpoint, PathStyle: true, Checksum: mode}, "hdr", rec)
			if err := s.Put(ctx, mode, []byte("checked body"), PutOptions{}); err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
			var sums []string
			for name := range rec.put {
				if name == "Content-Md5" || strings.HasPrefix(name, "X-Amz-Checksum-") {
					sums = append(sums, name)
				}
			}
			if got := strings.Join(sums, ","); got != want {
				t.Errorf("%s: checksum headers %q, want %q", mode, got, want)
			}
			if rec.put.Get("X-Amz-Trailer") != "" || strings.Contains(rec.put.Get("Content-Encoding"), "aws-chunked") {
				t.Errorf("%s: trailing checksum sent: %v", mode, rec.put)
			}
			// Over plain HTTP the signature must cover the body.
			if got := rec.put.Get("X-Amz-Content-Sha256"); mode != "crc32" && len(got) != 64 {
				t.Errorf("%s over http: x-amz-content-sha256 %q, want the body's hash", mode, got)
			}
		}
	})

	t.Run("auto: CRC32C once the store shows it checks it", func(t *testing.T) {
		// From the first put on: a HEAD of the bucket said "MinIO". A store
		// that does not say who it is gets MD5.
		for _, c := range []struct {
			rec  *recordingClient
			want string
		}{{&recordingClient{}, "crc32c"}, {&recordingClient{hideServer: true}, "md5"}} {
			s := recordedStore(t, S3Options{Endpoint: m.Endpoint, PathStyle: true}, "auto", c.rec)
			for i := range 3 {
				if err := s.Put(ctx, fmt.Sprint(i), []byte("checked body"), PutOptions{}); err != nil {
					t.Fatal(err)
				}
				if got := sentChecksum(c.rec.put); got != c.want {
					t.Errorf("hidden Server header %v, put %d: sent %s, want %s", c.rec.hideServer, i, got, c.want)
				}
			}
		}
	})

	t.Run("batch deletes, and one by one where DeleteObjects is missing", func(t *testing.T) {
		var keys []string
		for i := range 1500 {
			keys = append(keys, fmt.Sprintf("%04d", i))
		}
		for _, c := range []struct {
			name             string
			rec              *recordingClient
			batches, singles int32
		}{
			{"batch", &recordingClient{}, 2, 0},
			{"nobatch", &recordingClient{noBatchDelete: true}, 1, 1500}, // refused once, then never asked again
		} {
			s := recordedStore(t, S3Options{Endpoint: m.Endpoint, PathStyle: true}, "del-"+c.name, c.rec)
			for _, k := range keys[:1200] { // the rest are missing: no error either
				if err := s.Put(ctx, k, []byte("x"), PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := DeleteAll(ctx, s, keys); err != nil {
				t.Fatalf("%s: delete all: %v", c.name, err)
			}
			left := 0
			for range mc.ListObjects(ctx, "walship", minio.ListObjectsOptions{Prefix: "del-" + c.name + "/", Recursive: true}) {
				left++
			}
			if left != 0 {
				t.Errorf("%s: %d objects left in the bucket", c.name, left)
			}
			if b, d := c.rec.batchDeletes.Load(), c.rec.deletes.Load(); b != c.batches || d != c.singles {
				t.Errorf("%s: %d DeleteObjects and %d DeleteObject requests, want %d and %d", c.name, b, d, c.batches, c.singles)
			}
		}
	})

	t.Run("a store that does not echo CRC32C gets MD5", func(t *testing.T) {
		// A store that ignores x-amz-checksum-crc32c stores the object
		// unchecked and has no checksum to show: the put is sent again with
		// Content-MD5, and MD5 is used from then on.
		rec := &recordingClient{dropCRC32CEcho: true}
		s := recordedStore(t, S3Options{Endpoint: m.Endpoint, PathStyle: true}, "noecho", rec)
		for i := range 3 {
			rec.puts = nil
			if err := s.Put(ctx, fmt.Sprint(i), []byte("checked body"), PutOptions{IfNotExists: true}); err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
			var sent []string
			for _, h := range rec.puts {
				sent = append(sent, sentChecksum(h))
			}
			want := "md5"
			if i == 0 { // the first CRC32C attempt, then MD5
				want = "crc32c,md5"
			}
			if got := strings.Join(sent, ","); got != want {
				t.Errorf("put %d sent %s, want %s", i, got, want)
			}
			if got := readAll(t, openS3(t, "s3://walship/noecho", s3Opts(m)), fmt.Sprint(i)); got != "checked body" {
				t.Errorf("put %d: read back %q", i, got)
			}
		}

		// Asked for CRC32C explicitly, such a store is an error to fix.
		s = recordedStore(t, S3Options{Endpoint: m.Endpoint, PathStyle: true, Checksum: "crc32c"}, "noecho", &recordingClient{dropCRC32CEcho: true})
		err := s.Put(ctx, "explicit", []byte("checked body"), PutOptions{})
		if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "does not verify CRC32C") {
			t.Fatalf("crc32c against a store without it: %v", err)
		}
		t.Logf("message: %v", err)
	})

	t.Run("bad digest is transient", func(t *testing.T) {
		// The server refuses a body that does not match its Content-MD5; that
		// is corruption in transit, worth a retry.
		s, err := newS3Store(ctx, "walship", "digest", S3Options{Endpoint: m.Endpoint, PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		wrong := md5.Sum([]byte("other"))
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("walship"), Key: aws.String("digest/x"),
			Body: bytes.NewReader([]byte("body")), ContentMD5: aws.String(base64.StdEncoding.EncodeToString(wrong[:])),
		})
		err = s.mapErr("put", "x", err)
		if err == nil || !IsTransient(err) || !strings.Contains(err.Error(), "BadDigest") {
			t.Fatalf("mismatched Content-MD5: %v", err)
		}
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("walship"), Key: aws.String("digest/y"),
			Body: bytes.NewReader([]byte("body")), ChecksumCRC32C: aws.String(crc32cBase64([]byte("other"))),
		})
		if err = s.mapErr("put", "y", err); err == nil || !IsTransient(err) {
			t.Fatalf("mismatched CRC32C: %v", err)
		}
		t.Logf("mismatched CRC32C: %v", err)
		if _, err := mc.StatObject(ctx, "walship", "digest/y", minio.StatObjectOptions{}); err == nil {
			t.Fatal("MinIO stored an object whose CRC32C did not match")
		}
	})

	t.Run("server-side encryption", func(t *testing.T) {
		for sse, keyID := range map[string]string{"AES256": "", "aws:kms": minioKMSKey} {
			opts := s3Opts(m)
			opts.S3.SSE, opts.S3.SSEKMSKeyID = sse, keyID
			s := openS3(t, "s3://walship/sse", opts)
			if err := s.Put(ctx, sse, []byte("secret data"), PutOptions{}); err != nil {
				t.Fatalf("put with SSE %s: %v", sse, err)
			}
			if got := readAll(t, s, sse); got != "secret data" {
				t.Fatalf("SSE %s: read back %q", sse, got)
			}
			info, err := mc.StatObject(ctx, "walship", "sse/"+sse, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Metadata.Get("X-Amz-Server-Side-Encryption"); got != sse {
				t.Errorf("SSE %s: server reports encryption %q", sse, got)
			}
		}
	})

	t.Run("if not exists", func(t *testing.T) {
		s := openS3(t, "s3://walship/ine", s3Opts(m))
		if err := s.Put(ctx, "00000002.history", []byte("one"), PutOptions{IfNotExists: true}); err != nil {
			t.Fatal(err)
		}
		err := s.Put(ctx, "00000002.history", []byte("two"), PutOptions{IfNotExists: true})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("second put: %v, want ErrExists", err)
		}
		if got := readAll(t, s, "00000002.history"); got != "one" {
			t.Fatalf("history file was overwritten: %q", got)
		}
	})

	t.Run("missing key", func(t *testing.T) {
		s := openS3(t, "s3://walship/missing", s3Opts(m))
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get: %v", err)
		}
		if _, err := s.Stat(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat: %v", err)
		}
	})

	t.Run("missing bucket", func(t *testing.T) {
		s := openS3(t, "s3://no-such-bucket/p", s3Opts(m))
		want := `S3 bucket "no-such-bucket" does not exist at ` + m.Endpoint + `: create it or fix the repository URL`
		check := func(op string, err error) {
			t.Helper()
			var se *fault.SettingError
			if !errors.Is(err, ErrPermanent) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), want) ||
				!errors.Is(err, fault.ErrRepositoryMissing) || !errors.As(err, &se) || se.Setting != RepositoryURL {
				t.Errorf("%s: %v\nwant permanent error containing %q, a fault.ErrRepositoryMissing naming the repository URL", op, err, want)
			}
		}
		check("put", s.Put(ctx, "k", []byte("x"), PutOptions{}))
		_, err := s.Get(ctx, "k")
		check("get", err)
		_, err = s.Stat(ctx, "k")
		check("stat", err)
		_, err = s.List(ctx, "")
		check("list", err)
		check("delete", s.Delete(ctx, "k"))
	})

	t.Run("wrong credentials", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-password-xyz")
		s := openS3(t, "s3://walship/p", s3Opts(m))
		start := time.Now()
		err := s.Put(ctx, "k", []byte("x"), PutOptions{})
		if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), `access to S3 bucket "walship" denied`) ||
			!strings.Contains(err.Error(), "credentials are wrong or lack permission") {
			t.Fatalf("put: %v", err)
		}
		if strings.Contains(err.Error(), "not-the-password-xyz") || strings.Contains(err.Error(), minioPassword) {
			t.Fatalf("error leaks the secret key: %v", err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("a permanent error was retried for %v", time.Since(start))
		}
		_, err = s.Stat(ctx, "k") // HEAD: a 403 without an error code
		if !errors.Is(err, ErrPermanent) {
			t.Fatalf("stat: %v", err)
		}
		t.Logf("message: %v", err)

		t.Setenv("AWS_ACCESS_KEY_ID", "nobody")
		_, err = openS3(t, "s3://walship/p", s3Opts(m)).List(ctx, "")
		if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "credentials are wrong") {
			t.Fatalf("list with an unknown access key: %v", err)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
			t.Setenv(v, "") // restores the value when the subtest ends
			os.Unsetenv(v)
		}
		s := openS3(t, "s3://walship/p", s3Opts(m))
		err := s.Put(ctx, "k", []byte("x"), PutOptions{})
		if !errors.Is(err, ErrPermanent) || !strings.HasPrefix(err.Error(), noCredentials) {
			t.Fatalf("put: %v", err)
		}
	})
}

// A store that goes away gives a transient error once the retry budget is
// spent, never "not found".
func TestS3StoreDown(t *testing.T) {
	hermeticAWS(t)
	m := startMinio(t, "", nil)
	makeBucket(t, minioClient(t, m, nil), "walship")
	useMinioCredentials(t)
	ctx := context.Background()
	s := openS3(t, "s3://walship/p", s3Opts(m)) // 2s budget
	if err := s.Put(ctx, "k", []byte("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Kill()

	start := time.Now()
	err := s.Put(ctx, "k2", []byte("x"), PutOptions{})
	elapsed := time.Since(start)
	if err == nil || !IsTransient(err) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "giving up after") {
		t.Fatalf("put to a dead store: %v", err)
	}
	if elapsed > 4*time.Second {
		t.Errorf("gave up after %v, budget 2s", elapsed)
	}
	t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)
	if _, err := s.Get(ctx, "k"); err == nil || errors.Is(err, ErrNotFound) || !IsTransient(err) {
		t.Fatalf("get from a dead store: %v", err)
	}
}

// An HTTPS endpoint with a private CA works once S3Options.CAFile names the
// CA, and fails with a clear, permanent error when it does not.
func TestS3CustomCA(t *testing.T) {
	hermeticAWS(t)
	certsDir := t.TempDir()
	caPEM := selfSignedCert(t, certsDir)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMinio(t, certsDir, caPEM)
	makeBucket(t, minioClient(t, m, caPEM), "walship")
	useMinioCredentials(t)
	ctx := context.Background()

	opts := s3Opts(m)
	opts.S3.CAFile = caFile
	s := openS3(t, "s3://walship/tls", opts)
	if err := s.Put(ctx, "k", []byte("over TLS"), PutOptions{}); err != nil {
		t.Fatalf("put with the CA file: %v", err)
	}
	if got := readAll(t, s, "k"); got != "over TLS" {
		t.Fatalf("read back %q", got)
	}

	// Over TLS the SDK signs UNSIGNED-PAYLOAD instead of hashing the body a
	// second time (the server checks the CRC32C); a change of that default
	// would cost the agent CPU.
	rec := &recordingClient{}
	direct := recordedStore(t, opts.S3, "tls", rec)
	if err := direct.Put(ctx, "unsigned", []byte("over TLS"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := rec.put.Get("X-Amz-Content-Sha256"); got != "UNSIGNED-PAYLOAD" || rec.put.Get("X-Amz-Checksum-Crc32c") == "" {
		t.Errorf("over TLS: x-amz-content-sha256 %q, x-amz-checksum-crc32c %q", got, rec.put.Get("X-Amz-Checksum-Crc32c"))
	}

	s = openS3(t, "s3://walship/tls", s3Opts(m)) // system roots only
	err := s.Put(ctx, "k", []byte("x"), PutOptions{})
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "is not trusted") {
		t.Fatalf("put without the CA file: %v", err)
	}
	t.Logf("message: %v", err)
}

// selfSignedCert writes public.crt and private.key (MinIO's names) for
// 127.0.0.1 and localhost into dir and returns the certificate's PEM.
func selfSignedCert(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "walship test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM
}

// recordedStore is an s3 store (bucket walship) whose requests go through
// rec, then through the HTTP client the options configured.
func recordedStore(t *testing.T, o S3Options, prefix string, rec *recordingClient) *s3Store {
	t.Helper()
	s, err := newS3Store(context.Background(), "walship", prefix, o)
	if err != nil {
		t.Fatal(err)
	}
	rec.next = s.client.Options().HTTPClient
	s.client = s3.New(s.client.Options(), func(o *s3.Options) { o.HTTPClient = rec })
	return s
}

// sentChecksum names the upload checksum headers of a PUT: "md5",
// "crc32c", both joined by "+", or "none".
func sentChecksum(h http.Header) string {
	var sent []string
	if h.Get("Content-Md5") != "" {
		sent = append(sent, "md5")
	}
	if h.Get("X-Amz-Checksum-Crc32c") != "" {
		sent = append(sent, "crc32c")
	}
	if len(sent) == 0 {
		return "none"
	}
	return strings.Join(sent, "+")
}

// recordingClient remembers the headers of the PUTs it sends. With
// dropCRC32CEcho it hides the CRC32C in HEAD answers, as a store that does
// not know x-amz-checksum-crc32c would; with hideServer, the Server header
// of every answer.
type recordingClient struct {
	put            http.Header   // the last PUT's
	puts           []http.Header // every PUT's
	next           s3.HTTPClient
	dropCRC32CEcho bool
	hideServer     bool
	// noBatchDelete answers DeleteObjects with 501 Not Implemented, as
	// some S3-compatible stores do; batchDeletes and deletes count the
	// DeleteObjects and DeleteObject requests.
	noBatchDelete         bool
	batchDeletes, deletes atomic.Int32
}

func (r *recordingClient) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut {
		r.put = req.Header.Clone()
		r.puts = append(r.puts, r.put)
	}
	if req.Method == http.MethodDelete {
		r.deletes.Add(1)
	}
	if req.Method == http.MethodPost && req.URL.Query().Has("delete") {
		r.batchDeletes.Add(1)
		if r.noBatchDelete {
			body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`
			return &http.Response{StatusCode: http.StatusNotImplemented, Status: "501 Not Implemented", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
				ContentLength: int64(len(body)), Request: req}, nil
		}
	}
	resp, err := r.next.Do(req)
	if err == nil && r.dropCRC32CEcho && req.Method == http.MethodHead {
		resp.Header.Del("X-Amz-Checksum-Crc32c")
	}
	if err == nil && r.hideServer {
		resp.Header.Del("Server")
	}
	return resp, err
}

// Local state keyed by a repository (journals, caches) must tell the same
// bucket on two endpoints apart.
func TestLocationNamesTheEndpoint(t *testing.T) {
	open := func(endpoint string) string {
		st, err := Open(context.Background(), "s3://bucket/prefix", Options{S3: S3Options{Endpoint: endpoint, Region: "us-east-1", PathStyle: true}})
		if err != nil {
			t.Fatal(err)
		}
		return Location(st)
	}
	a, b := open("http://127.0.0.1:9000"), open("http://127.0.0.1:9001")
	if a == b || !strings.Contains(a, "127.0.0.1:9000") {
		t.Fatalf("locations %q and %q", a, b)
	}
}
