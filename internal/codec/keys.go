package codec

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/walship/walship/internal/fault"
)

// Keys loads age keys for encryption and decryption. Error messages name the
// setting and the file, never the key material.
//
// recipients is a space- or comma-separated list of age public keys
// ("age1..."); keyFile is an age identity file ("AGE-SECRET-KEY-1...").
// With only a key file, its identities' public keys become the recipients,
// so one setting serves both wal-push and wal-fetch.
func Keys(recipients, keyFile string) ([]age.Recipient, []age.Identity, error) {
	var rs []age.Recipient
	for _, f := range strings.FieldsFunc(recipients, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		r, err := age.ParseX25519Recipient(f)
		if err != nil {
			return nil, nil, fault.Settingf(EncryptionRecipient, "the %s holds something that is not an age public key (age1...)", EncryptionRecipient)
		}
		rs = append(rs, r)
	}
	if keyFile == "" {
		return rs, nil, nil
	}
	f, err := os.Open(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("encryption key file: %w", err)
	}
	defer f.Close()
	return withIdentities(rs, f, "encryption key file "+keyFile)
}

// KeysWithIdentity is Keys with the identity file's contents instead of
// its path (an age identity from a Secret, never written to disk); source
// names it in errors ("encryption key from Secret x key y"). An empty
// identity is none.
func KeysWithIdentity(recipients string, identity []byte, source string) ([]age.Recipient, []age.Identity, error) {
	rs, _, err := Keys(recipients, "")
	if err != nil || len(identity) == 0 {
		return rs, nil, err
	}
	return withIdentities(rs, bytes.NewReader(identity), source)
}

// withIdentities parses the identities in r and, without recipients, makes
// their public keys the recipients.
func withIdentities(rs []age.Recipient, r io.Reader, source string) ([]age.Recipient, []age.Identity, error) {
	ids, err := age.ParseIdentities(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s does not hold an age identity (AGE-SECRET-KEY-1...)", source)
	}
	if len(rs) == 0 {
		for _, id := range ids {
			if x, ok := id.(*age.X25519Identity); ok {
				rs = append(rs, x.Recipient())
			}
		}
	}
	return rs, ids, nil
}
