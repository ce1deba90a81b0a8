package storage

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// This file starts a real MinIO server for the S3 tests. It is local to this
// package on purpose (the e2e harness has its own).

const minioBinDefault = "bin/minio-v0.0.0-20260212201848-7aac2a2c5b7c/minio" // relative to the module root

const (
	minioUser     = "walship-test"
	minioPassword = "walship-test-secret-123"
	minioKMSKey   = "walship-test-key"
)

// hermeticAWS points the AWS SDK's configuration chain at nothing from this
// machine: no shared files, no profile, no variables, and never EC2 IMDS
// (169.254.169.254 must not be contacted from here).
func hermeticAWS(t *testing.T) {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "no-credentials"))
	for _, v := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(v, "")
		os.Unsetenv(v) // t.Setenv restores the old value after the test
	}
}

// minioBinary finds the server: $WALSHIP_MINIO, else the Makefile's build.
func minioBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WALSHIP_MINIO"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		t.Fatalf("WALSHIP_MINIO=%s does not exist", p)
	}
	p, err := filepath.Abs(filepath.Join("..", "..", minioBinDefault))
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("no MinIO binary: set WALSHIP_MINIO or build %s (the Makefile does before tests)", minioBinDefault)
	return ""
}

// testMinio is one MinIO server with its own data directory.
type testMinio struct {
	Endpoint string // http(s)://127.0.0.1:PORT
	cmd      *exec.Cmd
	out      *lockedBuffer
	done     chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startMinio runs a MinIO server until the test ends. With certsDir (holding
// public.crt and private.key) it serves HTTPS, trusted via caPEM.
func startMinio(t *testing.T, certsDir string, caPEM []byte) *testMinio {
	t.Helper()
	bin := minioBinary(t)
	port := freePort(t)
	args := []string{"server", t.TempDir(), "--address", fmt.Sprintf("127.0.0.1:%d", port), "--quiet"}
	scheme := "http"
	client := &http.Client{Timeout: time.Second}
	if certsDir != "" {
		args = append(args, "--certs-dir", certsDir)
		scheme = "https"
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	m := &testMinio{
		Endpoint: fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
		cmd:      exec.Command(bin, args...),
		out:      &lockedBuffer{},
		done:     make(chan struct{}),
	}
	m.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+minioUser,
		"MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		// A static KMS key, so SSE-S3 and SSE-KMS uploads work.
		"MINIO_KMS_SECRET_KEY="+minioKMSKey+":"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)),
	)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	t.Cleanup(m.Kill)

	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(m.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
		select {
		case <-m.done:
			t.Fatalf("minio exited during startup:\n%s", m.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not live after 60s (%v):\n%s", err, m.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL) and waits for it to exit.
func (m *testMinio) Kill() {
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
	}
	<-m.done
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
