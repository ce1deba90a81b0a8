package catalog

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/walship/walship/internal/codec"
)

// Protection is what a process's configuration holds to protect the
// repository's objects: whether it encrypts (age recipients), whether it can
// decrypt (an age identity), and the repository key that authenticates
// objects (nil without one).
type Protection struct {
	Encrypts bool
	Decrypts bool
	Key      []byte
}

// The policies an identity record states, fixed when the repository is created.
const (
	EncryptionAge      = "age"
	EncryptionNone     = "none"
	AuthenticationHMAC = "hmac-sha256"
)

// ErrPolicy: the configuration does not match the repository's recorded
// encryption or authentication policy.
var ErrPolicy = errors.New("the configuration does not match the repository's protection")

// ErrUnsignedIdentity: the identity record is not signed with the repository
// key that is configured.
var ErrUnsignedIdentity = errors.New("the repository's identity record is not signed with the configured repository key")

// newIdentity is the record a repository created with p gets.
func newIdentity(base Identity, p Protection) Identity {
	base.Encryption = EncryptionNone
	if p.Encrypts {
		base.Encryption = EncryptionAge
	}
	if p.Key != nil {
		base.Authentication = AuthenticationHMAC
		base.MAC = codec.SignRecord(identityKey(p.Key, base), base.signedBytes())
	}
	return base
}

func identityKey(secret []byte, id Identity) []byte {
	return codec.DeriveKey(secret, "identity record", id.ID())
}

// signedBytes is what the record's MAC covers: every field but the MAC.
func (id Identity) signedBytes() []byte {
	id.MAC = ""
	b, _ := json.Marshal(id)
	return b
}

// Verify checks the record against the configuration that reads it: with a
// repository key, the record must be signed with it (an attacker who can
// write to the store cannot then rewrite the policy); without one, the
// repository must not require it; and a reader that can decrypt refuses a
// repository that says it is not encrypted (no silent downgrade).
func (id Identity) Verify(p Protection) error {
	switch {
	case p.Key != nil && id.Authentication != AuthenticationHMAC:
		return fmt.Errorf("%w: it records no authentication, so the repository was created without a key (authentication cannot be added to an existing repository: start a new one) or the record was replaced", ErrUnsignedIdentity)
	case p.Key != nil && !codec.VerifyRecord(identityKey(p.Key, id), id.signedBytes(), id.MAC):
		return fmt.Errorf("%w: the record was altered, or the key is not this repository's", ErrUnsignedIdentity)
	case p.Key == nil && id.Authentication != "":
		return fmt.Errorf("%w: the repository authenticates its objects (%s), and no repository key is configured to check them", ErrPolicy, id.Authentication)
	case p.Decrypts && id.Encryption == EncryptionNone:
		return fmt.Errorf("%w: the repository records that it is not encrypted, but a decryption key is configured; if it really is not encrypted, remove the key setting, otherwise its identity record was altered", ErrPolicy)
	}
	return nil
}

// CheckWriter refuses a writer whose configuration would store objects the
// repository's policy does not allow: plain objects in an encrypted
// repository, or encrypted ones in a plain repository (one repository, one
// policy). Records written before the policy existed state none.
func (id Identity) CheckWriter(p Protection) error {
	if err := id.Verify(p); err != nil {
		return err
	}
	switch {
	case id.Encryption == EncryptionAge && !p.Encrypts:
		return fmt.Errorf("%w: the repository is encrypted, and no encryption recipient or key is configured: configure the repository's age key", ErrPolicy)
	case id.Encryption == EncryptionNone && p.Encrypts:
		return fmt.Errorf("%w: the repository is not encrypted, and encryption is configured; objects of one repository are all encrypted or all not: use a new repository to encrypt", ErrPolicy)
	}
	return nil
}

// Decoder returns a copy of base that enforces the repository's protection:
// encrypted objects only when the repository or the configuration says so,
// and a MAC under the repository key when one is configured.
func (id Identity) Decoder(base *codec.Decoder, p Protection) *codec.Decoder {
	d := *base
	d.RequireEncryption = id.Encryption == EncryptionAge || p.Decrypts
	if p.Key != nil {
		d.MACKey = ObjectKey(p.Key, id)
	}
	return &d
}

// Encoder returns a copy of base that authenticates what it writes when a
// repository key is configured.
func (id Identity) Encoder(base *codec.Encoder, p Protection) *codec.Encoder {
	e := *base
	if p.Key != nil {
		e.MACKey = ObjectKey(p.Key, id)
	}
	return &e
}

// ObjectKey is the key of the MACs of repository id's objects: bound to the
// repository, so an object copied from another one does not verify.
func ObjectKey(secret []byte, id Identity) []byte {
	return codec.DeriveKey(secret, "objects", id.ID())
}
