package codec

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// An authenticated repository shares a secret key among the servers that
// write to it and read from it. Checksums catch damage and age keeps
// contents secret, but neither says who wrote an object: anyone can compute
// an XXH3, and anyone can encrypt for a public age key. With the key, each
// object ends in an HMAC-SHA256 of every byte before it (magic, header
// length, header, payload), so an object altered, moved, or written without
// the key is refused.

// macHMACSHA256 is the header's name for the trailer walship writes.
const macHMACSHA256 = "hmac-sha256"

// macSize is the length of the trailer.
const macSize = sha256.Size

// MinKeySize is the shortest secret accepted as a repository key or MAC key.
const MinKeySize = 32

// recordDomain keeps record signatures apart from object trailers: a signed
// record is never a valid object, nor the reverse.
const recordDomain = "walship record v1\x00"

func checkMACKey(key []byte) error {
	if len(key) < MinKeySize {
		return fmt.Errorf("the repository's authentication key has %d bytes; it needs at least %d", len(key), MinKeySize)
	}
	return nil
}

func newObjectMAC(key []byte) hash.Hash { return hmac.New(sha256.New, key) }

// DeriveKey derives a 32-byte key for one purpose ("objects", "records", …)
// from the repository's secret, bound to the repository's identity, so that
// a key never authenticates objects of another repository or another use.
func DeriveKey(secret []byte, purpose, repositoryID string) []byte {
	info := fmt.Sprintf("walship v1 %d:%s %d:%s", len(purpose), purpose, len(repositoryID), repositoryID)
	key, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		panic(err) // only for lengths beyond 255 hashes
	}
	return key
}

// SignRecord returns the hex MAC of a small record the repository keeps in
// clear (its identity record, say).
func SignRecord(key, data []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(recordDomain))
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyRecord reports whether mac is SignRecord(key, data). A key shorter
// than MinKeySize verifies nothing.
func VerifyRecord(key, data []byte, mac string) bool {
	got, err := hex.DecodeString(mac)
	if err != nil || len(key) < MinKeySize {
		return false
	}
	want, _ := hex.DecodeString(SignRecord(key, data))
	return hmac.Equal(got, want)
}

// trailerReader passes a stream on without its last macSize bytes, the
// object's trailer, and feeds what it passes on to mac (nil when there is no
// key to check it with). It reads from a bufio.Reader so that holding back
// the trailer costs no copy.
type trailerReader struct {
	br      *bufio.Reader
	mac     hash.Hash
	trailer []byte // the stream's last bytes, once it ended
	ended   bool
}

func newTrailerReader(br *bufio.Reader, mac hash.Hash) *trailerReader {
	return &trailerReader{br: br, mac: mac}
}

func (t *trailerReader) Read(p []byte) (int, error) {
	if t.ended {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	ahead, err := t.br.Peek(macSize + 1)
	if len(ahead) <= macSize {
		if err == io.EOF {
			t.trailer, t.ended = bytes.Clone(ahead), true
		}
		return 0, err
	}
	n, _ := t.br.Read(p[:min(len(p), t.br.Buffered()-macSize)]) // from the buffer: no error
	if t.mac != nil {
		t.mac.Write(p[:n])
	}
	return n, nil
}

// complete reports whether the stream ended with a whole trailer.
func (t *trailerReader) complete() bool { return t.ended && len(t.trailer) == macSize }

// authentic reports whether the stream ended with the MAC of what came before.
func (t *trailerReader) authentic() bool {
	return t.mac != nil && t.complete() && hmac.Equal(t.mac.Sum(nil), t.trailer)
}

// drain reads the rest of the stream, at most limit bytes; it reports whether
// the stream ended within them.
func (t *trailerReader) drain(limit int64) (bool, error) {
	_, err := io.CopyN(io.Discard, t, limit+1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// VerifyObject checks that a whole stored object carries a valid MAC under
// key, without decoding it: what a writer that cannot decrypt (it holds only
// public keys) needs to trust an object it finds already stored.
func VerifyObject(obj, key []byte) error {
	if err := checkMACKey(key); err != nil {
		return err
	}
	h, err := ReadHeader(bytes.NewReader(obj))
	if err != nil {
		return err
	}
	if h.MAC != macHMACSHA256 || len(obj) < macSize {
		return fmt.Errorf("%w: %s carries no authentication: it was written without the repository key", ErrTampered, h.Name)
	}
	m := newObjectMAC(key)
	m.Write(obj[:len(obj)-macSize])
	if !hmac.Equal(m.Sum(nil), obj[len(obj)-macSize:]) {
		return fmt.Errorf("%w: %s does not carry this repository's authentication: it was altered, or written without the repository key", ErrTampered, h.Name)
	}
	return nil
}
