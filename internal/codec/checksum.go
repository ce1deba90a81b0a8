package codec

import (
	"encoding/hex"
	"hash"

	"github.com/zeebo/xxh3"
)

// walship fingerprints original bytes with XXH3-128. The checksum guards
// against damage anywhere between the file read and the file written, and
// tells an identical re-push from a different file; tampering is age's job
// (authenticated encryption), not the checksum's. XXH3 hashes a 16 MiB
// segment in 0.4 ms where SHA-256 takes 10.6 ms on these machines (measured
// with SHA-NI): a third of wal-fetch's CPU.

// NewChecksum returns a streaming hash whose Checksum is the same as Checksum's.
func NewChecksum() hash.Hash { return xxh3.New128() }

// ChecksumOf formats the sum of a hash from NewChecksum.
func ChecksumOf(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// Checksum returns the checksum of b.
func Checksum(b []byte) string {
	s := xxh3.Hash128(b).Bytes()
	return hex.EncodeToString(s[:])
}

// checksumLen is the length of a formatted checksum.
const checksumLen = 32
