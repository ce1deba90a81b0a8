package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOOptions changes how StartMinIOWith runs the server.
type MinIOOptions struct {
	// TLS serves HTTPS with a fresh self-signed certificate for 127.0.0.1;
	// its CA file is MinIO.CAFile (and WALSHIP_S3_CA_FILE in Env).
	TLS bool
}

// MinIO is a running MinIO server on 127.0.0.1 with its own data directory.
type MinIO struct {
	Endpoint  string        // "http://127.0.0.1:PORT" (https with TLS)
	AccessKey string        // root user
	SecretKey string        // root password
	Region    string        // "us-east-1"
	CAFile    string        // PEM file of the server's certificate, with TLS; else ""
	DataDir   string        // kept across Stop and Start
	LogPath   string        // MinIO's stdout and stderr
	Client    *minio.Client // an S3 client independent of walship, to read back what it wrote

	t           testing.TB
	bin         string
	addr        string
	consoleAddr string
	certsDir    string
	mu          sync.Mutex
	http        *http.Client
	proc        *process
}

// StartMinIO starts a MinIO server over plain HTTP; see StartMinIOWith.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return StartMinIOWith(t, MinIOOptions{})
}

// StartMinIOWith starts a MinIO server on free ports and waits until it
// serves requests. The binary is $WALSHIP_MINIO, else the one that
// scripts/ensure-minio.sh builds under bin/. The server is killed after the
// test; when the test failed, the tail of its log is printed.
func StartMinIOWith(t testing.TB, opts MinIOOptions) *MinIO {
	t.Helper()
	m := &MinIO{
		AccessKey: "walship-test",
		SecretKey: "walship-test-secret-key",
		Region:    "us-east-1",
		DataDir:   filepath.Join(t.TempDir(), "minio-data"),
		t:         t,
		bin:       minioBinary(t),
	}
	m.LogPath = filepath.Join(filepath.Dir(m.DataDir), "minio.log")
	m.addr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	m.consoleAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	// Certificates live where the server user can read the CA file (walship
	// runs as that user inside archive_command).
	m.certsDir = filepath.Join(NewServerDir(t), "certs")
	if err := os.MkdirAll(m.certsDir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	scheme := "http"
	var transport http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if opts.TLS {
		scheme = "https"
		pool := writeSelfSignedCert(t, m.certsDir)
		m.CAFile = filepath.Join(m.certsDir, "public.crt")
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		transport = tr
	}
	m.Endpoint = scheme + "://" + m.addr

	client, err := minio.New(m.addr, &minio.Options{
		Creds:     credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Secure:    opts.TLS,
		Region:    m.Region,
		Transport: transport,
	})
	if err != nil {
		t.Fatalf("harness: minio client: %v", err)
	}
	m.Client = client
	m.http = &http.Client{Timeout: 2 * time.Second, Transport: transport}

	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("harness: MinIO log (%s), last lines:\n%s", m.LogPath, logTail(m.LogPath, 40))
		}
	})
	m.Start()
	return m
}

func minioBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WALSHIP_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("harness: WALSHIP_MINIO=%s: %v (run make tools)", p, err)
		}
		return p
	}
	p := filepath.Join(ModuleRoot(t), "bin", "minio-"+MinIOVersion, "minio")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("harness: no MinIO binary: WALSHIP_MINIO is not set and %s does not exist; run make tools (it builds MinIO from the Go module proxy)", p)
	}
	return p
}

// Start starts the server (again) on the same address and data directory and
// waits up to a minute until it answers S3 requests.
func (m *MinIO) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return
	}
	cmd := exec.Command(m.bin, "server", m.DataDir,
		"--address", m.addr, "--console-address", m.consoleAddr,
		"--certs-dir", m.certsDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on",
	)
	proc, err := startProcess("minio", cmd, m.LogPath)
	if err != nil {
		m.t.Fatalf("harness: %v", err)
	}
	m.proc = proc
	start := time.Now()
	ctx := context.Background()
	err = pollUntil(60*time.Second, 100*time.Millisecond, func() (bool, error) {
		if proc.exited() {
			return false, fmt.Errorf("minio exited: %v", proc.err)
		}
		if !m.healthy() {
			return false, nil
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := m.Client.ListBuckets(cctx)
		return err == nil, nil
	})
	if err != nil {
		proc.killGroup()
		m.t.Fatalf("harness: MinIO did not start on %s: %v\nlog (%s):\n%s", m.Endpoint, err, m.LogPath, logTail(m.LogPath, 40))
	}
	m.t.Logf("harness: MinIO serving %s (data %s) after %s", m.Endpoint, m.DataDir, time.Since(start).Round(time.Millisecond))
}

func (m *MinIO) healthy() bool {
	resp, err := m.http.Get(m.Endpoint + "/minio/health/live")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop kills the server (SIGKILL, like a crash or a lost network) and waits
// for it to exit. The data directory stays; Start serves it again.
func (m *MinIO) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return
	}
	m.proc.killGroup()
}

// MakeBucket creates a bucket.
func (m *MinIO) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: m.Region}); err != nil {
		t.Fatalf("harness: make bucket %s: %v", name, err)
	}
}

// ListObjects returns the sorted keys of all objects under prefix in bucket.
func (m *MinIO) ListObjects(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var keys []string
	for obj := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("harness: list s3://%s/%s: %v", bucket, prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	sort.Strings(keys)
	return keys
}

// Env returns the environment a walship process needs to use
// s3://bucket/prefix on this server. Append it to os.Environ() (later entries
// win), or pass it as PGOptions.Env so archive_command inherits it.
func (m *MinIO) Env(bucket, prefix string) []string {
	repo := "s3://" + bucket
	if prefix != "" {
		repo += "/" + prefix
	}
	env := []string{
		"WALSHIP_REPO=" + repo,
		"WALSHIP_S3_ENDPOINT=" + m.Endpoint,
		"WALSHIP_S3_PATH_STYLE=true",
		"WALSHIP_S3_REGION=" + m.Region,
		"AWS_ACCESS_KEY_ID=" + m.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + m.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true",
		// Nothing from this machine's AWS configuration.
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_PROFILE=",
		"AWS_SESSION_TOKEN=",
	}
	if m.CAFile != "" {
		env = append(env, "WALSHIP_S3_CA_FILE="+m.CAFile)
	}
	return env
}

// writeSelfSignedCert writes public.crt and private.key (MinIO's names) for
// 127.0.0.1 and localhost into dir and returns a pool trusting the certificate.
func writeSelfSignedCert(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "walship-test-minio"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), crt, 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	return pool
}
