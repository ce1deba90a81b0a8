package repoapi_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"

	apiv1 "github.com/walship/walship/api/v1"
	"github.com/walship/walship/internal/repo/repoapi"
	"github.com/walship/walship/internal/storage"
)

// fakeSecrets serves Secret keys from a map, "name/key": value.
func fakeSecrets(m map[string]string) repoapi.SecretFunc {
	return func(name, key string) ([]byte, error) {
		v, ok := m[name+"/"+key]
		if !ok {
			return nil, fmt.Errorf("secret %s has no key %s", name, key)
		}
		return []byte(v), nil
	}
}

func sel(name, key string) *apiv1.SecretKeySelector {
	return &apiv1.SecretKeySelector{LocalObjectReference: apiv1.LocalObjectReference{Name: name}, Key: key}
}

func TestFromCluster(t *testing.T) {
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	secrets := fakeSecrets(map[string]string{
		"s3/id":     "AKIDEXAMPLE\n",
		"s3/secret": "s3cr3t-value\n",
		"s3/token":  "session-token-value",
		"ca/ca.crt": "-----BEGIN CERTIFICATE-----\n",
		"age/key":   "# created by test\n" + identity.String() + "\n",
	})
	r := &apiv1.BackupRepository{
		DestinationPath: "s3://bucket/prefix/",
		EndpointURL:     "https://minio.example:9000",
		EndpointCA:      sel("ca", "ca.crt"),
		Region:          "eu-west-3",
		PathStyle:       true,
		S3Credentials:   &apiv1.S3Credentials{AccessKeyID: sel("s3", "id"), SecretAccessKey: sel("s3", "secret"), SessionToken: sel("s3", "token")},
		Age:             &apiv1.AgeEncryption{Recipients: []string{identity.Recipient().String()}, Identity: sel("age", "key")},
		Wal:             &apiv1.WalBackupConfiguration{Compression: apiv1.CompressionS2, Encryption: apiv1.EncryptionAES256},
	}
	s, err := repoapi.FromCluster(r, "pg1", secrets)
	if err != nil {
		t.Fatal(err)
	}
	want := storage.S3Options{
		Endpoint: "https://minio.example:9000", Region: "eu-west-3", PathStyle: true,
		CAPEM: []byte("-----BEGIN CERTIFICATE-----\n"), SSE: "AES256",
		Credentials: storage.S3Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "s3cr3t-value", SessionToken: "session-token-value"},
	}
	if s.URL != "s3://bucket/prefix/pg1" || s.Compression != "s2" || fmt.Sprint(s.S3) != fmt.Sprint(want) ||
		!bytes.Equal(s.S3.CAPEM, want.CAPEM) || s.S3.Credentials != want.Credentials {
		t.Errorf("settings: %+v, S3 %+v", s, s.S3)
	}
	rs, ids, err := s.Keys()
	if err != nil || len(rs) != 1 || len(ids) != 1 {
		t.Fatalf("keys from the Secret: %d recipients, %d identities, %v", len(rs), len(ids), err)
	}
	p, _, err := s.Protection()
	if err != nil || !p.Encrypts || !p.Decrypts || p.Key != nil {
		t.Errorf("protection %+v, %v", p, err)
	}

	// serverName names the folder; IAM role: the default chain; no Wal: zstd.
	s, err = repoapi.FromCluster(&apiv1.BackupRepository{DestinationPath: "file:///backups", ServerName: "origin",
		S3Credentials: &apiv1.S3Credentials{InheritFromIAMRole: true}}, "pg1", secrets)
	if err != nil || s.URL != "file:///backups/origin" || s.S3.Credentials.Set() || s.Compression != "zstd" {
		t.Errorf("file repository: %+v, %v", s, err)
	}

	// A missing Secret key is named.
	r.S3Credentials.SecretAccessKey = sel("s3", "nope")
	if _, err := repoapi.FromCluster(r, "pg1", secrets); err == nil || !strings.Contains(err.Error(), "s3Credentials.secretAccessKey: reading Secret s3 key nope") {
		t.Errorf("missing secret: %v", err)
	}
	// A Secret that holds no age identity is named, not shown.
	r.S3Credentials.SecretAccessKey = sel("s3", "secret")
	r.Age.Identity = sel("s3", "secret")
	s, err = repoapi.FromCluster(r, "pg1", secrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Keys(); err == nil || !strings.Contains(err.Error(), "encryption key from Secret s3 key secret does not hold an age identity") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("bad identity: %v", err)
	}
}
