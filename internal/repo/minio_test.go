package repo_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/walship/walship/e2e/harness"
	"github.com/walship/walship/internal/catalog"
	"github.com/walship/walship/internal/pg"
	"github.com/walship/walship/internal/repo"
	"github.com/walship/walship/internal/storage"
)

// noAWSEnvironment leaves the AWS SDK's default chain nothing to find, so
// only the settings' own credentials can work.
func noAWSEnvironment(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	for _, v := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

// bucketOnly is temporary credentials (MinIO's STS) that may use bucket only.
func bucketOnly(t *testing.T, m *harness.MinIO, bucket string) storage.S3Credentials {
	t.Helper()
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],` +
		`"Resource":["arn:aws:s3:::` + bucket + `","arn:aws:s3:::` + bucket + `/*"]}]}`
	sts, err := credentials.NewSTSAssumeRole(m.Endpoint, credentials.STSAssumeRoleOptions{
		AccessKey: m.AccessKey, SecretKey: m.SecretKey, Policy: policy, Location: m.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := sts.Get()
	if err != nil {
		t.Fatal(err)
	}
	return storage.S3Credentials{AccessKeyID: v.AccessKeyID, SecretAccessKey: v.SecretAccessKey, SessionToken: v.SessionToken}
}

// TestTwoRepositoriesOneProcess: a cluster's repository and its source's,
// each with its own credentials, in one process; credentials of the one do
// not open the other.
func TestTwoRepositoriesOneProcess(t *testing.T) {
	noAWSEnvironment(t)
	m := harness.StartMinIO(t)
	m.MakeBucket(t, "source")
	m.MakeBucket(t, "own")
	settings := func(bucket string, c storage.S3Credentials) repo.Settings {
		return repo.Settings{
			URL:         "s3://" + bucket + "/pg",
			S3:          storage.S3Options{Endpoint: m.Endpoint, Region: m.Region, PathStyle: true, Credentials: c},
			Compression: "zstd", RetryBudget: 2 * time.Second,
		}
	}
	sourceKeys, ownKeys := bucketOnly(t, m, "source"), bucketOnly(t, m, "own")
	source, err := settings("source", sourceKeys).Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	own, err := settings("own", ownKeys).Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	const seg = "000000010000000000000001"
	walDir := filepath.Join(t.TempDir(), "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	if err := os.WriteFile(filepath.Join(walDir, seg), pg.FakeSegment(seg, 7, 1<<20, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := catalog.WALKey(seg)
	log := slog.New(slog.DiscardHandler)
	for _, r := range []*repo.Repository{source, own} {
		sh, err := r.Shipper(walDir, 1, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Push(context.Background(), seg); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if _, id, err := r.Reader(context.Background()); err != nil || id == nil {
			t.Fatalf("%s: reading back the identity: %v", r, err)
		}
	}
	for _, bucket := range []string{"source", "own"} {
		if objs := m.ListObjects(t, bucket, "pg/"); !slices.Contains(objs, "pg/"+key) {
			t.Errorf("bucket %s holds %v, not pg/%s", bucket, objs, key)
		}
	}

	// The own repository's credentials do not open the source's.
	wrong, err := settings("source", ownKeys).Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sh, err := wrong.Shipper(walDir, 1, log)
	if err != nil {
		t.Fatal(err)
	}
	err = sh.Push(context.Background(), seg)
	if err == nil || !strings.Contains(err.Error(), "s3://source/pg") || !strings.Contains(err.Error(), "credentials are wrong or lack permission") {
		t.Errorf("pushing with another repository's credentials: %v", err)
	}
	t.Logf("with the wrong credentials: %v", err)
	if strings.Contains(err.Error(), ownKeys.SecretAccessKey) {
		t.Errorf("the error shows the secret: %v", err)
	}
}
