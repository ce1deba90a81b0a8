package pg

import (
	"encoding/binary"
	"math/rand/v2"
)

// FakeSegment builds the bytes of a segment named name whose first page
// carries a valid long header for systemID, the rest filled from seed. It
// exists for tests that need WAL without running a server.
func FakeSegment(name string, systemID uint64, segSize uint32, seed uint64) []byte {
	seg, err := ParseSegmentName(name)
	if err != nil {
		panic(err)
	}
	b := make([]byte, segSize)
	r := rand.New(rand.NewPCG(seed, systemID))
	for i := 64; i+8 <= len(b); i += 8 {
		// Half random, half constant: compressible like real WAL.
		if (i/4096)%2 == 0 {
			binary.LittleEndian.PutUint64(b[i:], r.Uint64())
		}
	}
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110) // PostgreSQL 15
	le.PutUint16(b[2:], xlpLongHeader)
	le.PutUint32(b[4:], uint32(seg.Timeline))
	le.PutUint64(b[8:], uint64(seg.StartLSN(segSize)))
	le.PutUint64(b[24:], systemID)
	le.PutUint32(b[32:], segSize)
	le.PutUint32(b[36:], 8192)
	return b
}
