// Package e2e runs walship end to end against real PostgreSQL 15 servers and
// a real MinIO, reading back what walship stored with an independent client.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/spool"
)

// result is what one walship invocation did.
type result struct {
	stdout, stderr string
	code           int
}

// runWalship runs the walship binary as the server's user in dir with env
// (plus PATH), the way PostgreSQL runs archive_command and restore_command.
func runWalship(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(harness.Walship(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED=true"}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	harness.AsServerUser(t, cmd)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running walship: %v", err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// storedFile reads the object walship stored for a WAL file name with
// minio-go (not walship's own S3 code) and decodes it. ok is false when the
// object does not exist.
func storedFile(t *testing.T, m *harness.MinIO, bucket, prefix, name string, dec *codec.Decoder) (data []byte, ok bool) {
	t.Helper()
	key, err := catalog.WALKey(name)
	if err != nil {
		t.Fatal(err)
	}
	if prefix != "" {
		key = prefix + "/" + key
	}
	raw, ok := rawObject(t, m, bucket, key)
	if !ok {
		return nil, false
	}
	if dec == nil {
		dec = &codec.Decoder{}
	}
	var buf bytes.Buffer
	if _, err := dec.Decode(bytes.NewReader(raw), &buf, name); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	return buf.Bytes(), true
}

// rawObject reads an object's stored bytes with minio-go; ok is false when
// it does not exist.
func rawObject(t *testing.T, m *harness.MinIO, bucket, key string) (data []byte, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obj, err := m.Client.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer obj.Close()
	raw, err := io.ReadAll(obj)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, false
		}
		t.Fatalf("read %s: %v", key, err)
	}
	return raw, true
}

// backupOf runs `walship backup --fast-checkpoint --json` of srv (libpq's
// variables from srv.Env, the repository's settings in env, more flags in
// args) and returns the backup's summary; a failed backup fails the test.
func backupOf(t *testing.T, srv *harness.Postgres, env []string, args ...string) catalog.BackupSummary {
	t.Helper()
	r := runWalship(t, srv.DataDir, append(srv.Env(), env...), append([]string{"backup", "--fast-checkpoint", "--json"}, args...)...)
	var sum catalog.BackupSummary
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &sum) != nil {
		t.Fatalf("backup of %s: exit %d\n%s%s", srv.DataDir, r.code, r.stdout, r.stderr)
	}
	return sum
}

// decodeManifest reads a manifest object as found in the bucket (encrypted
// when the backup is).
func decodeManifest(t *testing.T, raw []byte, id string, keys ...age.Identity) *catalog.Manifest {
	t.Helper()
	m, err := catalog.DecodeManifest(bytes.NewReader(raw), &codec.Decoder{Identities: keys}, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// encodeManifest stores m the way walship does (unencrypted), for tests
// that alter a manifest.
func encodeManifest(t *testing.T, m *catalog.Manifest) []byte {
	t.Helper()
	obj, err := catalog.EncodeManifest(&codec.Encoder{}, m)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// spoolDir is the prefetch spool of wal-fetch in dataDir for the repository
// env names.
func spoolDir(dataDir string, env []string) string {
	var repo, endpoint string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "WALSHIP_REPO="); ok {
			repo = v
		}
		if v, ok := strings.CutPrefix(kv, "WALSHIP_S3_ENDPOINT="); ok {
			endpoint = v
		}
	}
	return string(spool.For(filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG"), spool.Location(repo, endpoint)))
}
