package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/repo"
	"github.com/walship/walship/internal/storage"
)

func TestRepoKeyFromContents(t *testing.T) {
	key := codec.NewRepositoryKey()
	s := repo.Settings{URL: "file:///x", Compression: "zstd", RepoKey: []byte(key), RepoKeySource: "Secret k key key"}
	got, err := s.Key()
	if err != nil || len(got) != 32 {
		t.Fatalf("key: %d bytes, %v", len(got), err)
	}
	file := filepath.Join(t.TempDir(), "key")
	os.WriteFile(file, []byte(key), 0o600)
	fromFile, err := repo.Settings{RepoKeyFile: file}.Key()
	if err != nil || !bytes.Equal(fromFile, got) {
		t.Errorf("the file and its contents give different keys: %v", err)
	}
	s.RepoKey = []byte("short")
	if _, err := s.Key(); err == nil || !strings.Contains(err.Error(), "repository key from Secret k key key holds") || strings.Contains(err.Error(), "short") {
		t.Errorf("bad key: %v", err)
	}
	// The agent tells settings with another key apart.
	a := repo.Settings{URL: "file:///x", RepoKey: []byte(key)}
	b := repo.Settings{URL: "file:///x", RepoKey: []byte(codec.NewRepositoryKey())}
	if a.AgentTarget() == b.AgentTarget() || a.AgentTarget() == (repo.Settings{URL: "file:///x"}).AgentTarget() {
		t.Error("agent targets of settings with different keys are equal")
	}
}

// TestSecretsNeverPrinted: no way of printing settings or a repository
// shows a secret.
func TestSecretsNeverPrinted(t *testing.T) {
	identity, _ := age.GenerateX25519Identity()
	s := repo.Settings{
		URL: "s3://bucket/prefix", Compression: "zstd",
		S3: storage.S3Options{Endpoint: "http://127.0.0.1:1", PathStyle: true,
			Credentials: storage.S3Credentials{AccessKeyID: "AKIDVISIBLE", SecretAccessKey: "SECRET-ACCESS-KEY", SessionToken: "SESSION-TOKEN"}},
		Identity: []byte(identity.String()), IdentitySource: "Secret age key key",
		RepoKey: []byte("REPOSITORY-KEY-BYTES-0123456789abcdef"),
	}
	r, err := s.Open(context.Background())
	if err == nil {
		t.Fatal("a repository key that is no key opened")
	}
	s.RepoKey = []byte(codec.NewRepositoryKey())
	if r, err = s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("open", "repo", s, "ptr", &s, "r", r)
	slog.New(slog.NewJSONHandler(&log, nil)).Info("open", "repo", s)
	var out []string
	for _, v := range []any{s, &s, r, s.S3, s.S3.Credentials} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			out = append(out, fmt.Sprintf(f, v))
		}
	}
	out = append(out, log.String(), fmt.Sprint(errors.New(s.String())))
	all := strings.Join(out, "\n")
	for _, secret := range []string{"SECRET-ACCESS-KEY", "SESSION-TOKEN", identity.String(), strings.TrimSpace(strings.Split(string(s.RepoKey), "\n")[1])} {
		if strings.Contains(all, secret) {
			t.Errorf("%q printed:\n%s", secret, all)
		}
	}
	if !strings.Contains(fmt.Sprint(s), "AKIDVISIBLE") || !strings.Contains(fmt.Sprint(s), "s3://bucket/prefix") {
		t.Errorf("the settings do not say what they open: %s", s)
	}
}
