package codec

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
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
			return nil, nil, errors.New("WALSHIP_ENCRYPTION_RECIPIENT holds something that is not an age public key (age1...)")
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
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, nil, fmt.Errorf("encryption key file %s does not hold an age identity (AGE-SECRET-KEY-1...)", keyFile)
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
