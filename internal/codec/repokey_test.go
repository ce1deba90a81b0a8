package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func keyFile(t *testing.T, contents []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "repository.key")
	if err := os.WriteFile(p, contents, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRepositoryKeyForms(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	secret[0] = 0 // surely not text
	for name, contents := range map[string][]byte{
		"raw":        secret,
		"hex":        []byte(hex.EncodeToString(secret) + "\n"),
		"base64":     []byte("# a comment\n" + base64.StdEncoding.EncodeToString(secret) + "\r\n"),
		"raw base64": []byte(base64.RawURLEncoding.EncodeToString(secret)),
	} {
		got, err := LoadRepositoryKey(keyFile(t, contents))
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s: %v", name, err)
		}
	}
	generated := NewRepositoryKey()
	got, err := LoadRepositoryKey(keyFile(t, []byte(generated)))
	if err != nil || len(got) != 32 || NewRepositoryKey() == generated {
		t.Errorf("NewRepositoryKey: %v", err)
	}
}

func TestLoadRepositoryKeyRefusesWeakKeys(t *testing.T) {
	for name, contents := range map[string]string{
		"short raw":    "\x00\x01\x02short secret",
		"short hex":    hex.EncodeToString([]byte("sixteen bytes!!!")),
		"short base64": base64.StdEncoding.EncodeToString([]byte("twenty-four bytes secret")),
		"passphrase":   "correct horse battery staple, a long sentence of words",
		"empty":        "",
		"comment only": "# SECRETSECRET\n",
	} {
		_, err := LoadRepositoryKey(keyFile(t, []byte(contents)))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "horse") || (len(contents) > 8 && strings.Contains(err.Error(), contents[:8])) {
			t.Errorf("%s: the message shows the key: %v", name, err)
		}
	}
	if _, err := LoadRepositoryKey(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
	if _, err := LoadRepositoryKey(keyFile(t, bytes.Repeat([]byte("a"), 5000))); err == nil {
		t.Error("a large file was accepted")
	}
}
