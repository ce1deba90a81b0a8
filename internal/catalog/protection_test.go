package catalog

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/internal/codec"
	"github.com/walship/walship/internal/storage"
)

func TestProtectionIsFixedAtCreation(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	other := bytes.Repeat([]byte{2}, 32)
	plain := Protection{}
	encrypting := Protection{Encrypts: true, Decrypts: true}
	authenticated := Protection{Key: key}
	for _, c := range []struct {
		name     string
		created  Protection
		use      Protection
		writeErr string // "" when writing is allowed
		readErr  string
	}{
		{"plain by plain", plain, plain, "", ""},
		{"encrypted by encrypting", encrypting, encrypting, "", ""},
		{"encrypted by a writer without keys", encrypting, plain, "the repository is encrypted", ""},
		{"plain by an encrypting writer", plain, encrypting, "not encrypted", "not encrypted"},
		{"authenticated with its key", authenticated, authenticated, "", ""},
		{"authenticated without a key", authenticated, plain, "no repository key is configured", "no repository key is configured"},
		{"authenticated with another key", authenticated, Protection{Key: other}, "not signed", "not signed"},
		{"plain with a key", plain, authenticated, "not signed", "not signed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := storage.Open(context.Background(), "file://"+filepath.Join(t.TempDir(), "repo"), storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := EnsureIdentity(context.Background(), st, 7, 16<<20, c.created); err != nil {
				t.Fatal(err)
			}
			_, err = EnsureIdentity(context.Background(), st, 7, 16<<20, c.use)
			check(t, "write", err, c.writeErr)
			id, err := OpenIdentity(context.Background(), st, c.use)
			check(t, "read", err, c.readErr)
			if err == nil && c.use.Key != nil {
				if d := id.Decoder(&codec.Decoder{}, c.use); d.MACKey == nil {
					t.Error("a reader with the key does not check MACs")
				}
			}
		})
	}
}

func check(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s refused: %v", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: got %v, want an error saying %q", what, err, want)
	case want != "" && !errors.Is(err, ErrPolicy) && !errors.Is(err, ErrUnsignedIdentity):
		t.Errorf("%s: %v is neither ErrPolicy nor ErrUnsignedIdentity", what, err)
	}
}
