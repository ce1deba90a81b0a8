// Package codec turns a file into a self-describing stored object and back:
// a small clear-text header (what the payload needs to be decoded, plus the
// size and checksum of the original bytes), then the payload, compressed and
// optionally encrypted with age, and, in an authenticated repository, a
// trailer that proves who wrote it (see mac.go). Fetching therefore needs no
// matching configuration, only the key when the object is encrypted.
package codec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/walship/walship/internal/fault"
)

// magic starts every object walship writes; the last byte is the format version.
var magic = []byte("WALSHIP\x01")

// maxHeaderLen guards against reading a huge "header" from a foreign object.
const maxHeaderLen = 64 << 10

// ErrCorrupt marks objects whose bytes do not decode to what their header
// promises: truncated, altered, or not written by walship. A
// fault.ErrIntegrity.
var ErrCorrupt = fault.Sentinel(fault.ErrIntegrity, "corrupt object")

// ErrTampered marks objects refused because they cannot come from walship
// writing with this repository's keys: unencrypted in an encrypted
// repository, or without a valid authentication trailer. It is a kind of
// ErrCorrupt (errors.Is(ErrTampered, ErrCorrupt) holds), so callers that stop
// at damaged objects stop at these too, and a fault.ErrIntegrity.
var ErrTampered error = tamperedError{}

type tamperedError struct{}

func (tamperedError) Error() string { return "tampered object" }
func (tamperedError) Is(target error) bool {
	return target == ErrCorrupt || target == fault.ErrIntegrity
}

// errBadMagic: the bytes are not a walship object at all.
var errBadMagic = fmt.Errorf("%w: not a walship object (bad magic)", ErrCorrupt)

// Header is stored in clear text at the front of every object.
type Header struct {
	Name        string `json:"name"`           // the file's name when it was stored
	Size        int64  `json:"size"`           // size of the original bytes
	Checksum    string `json:"xxh3,omitempty"` // of the original bytes, see NewChecksum
	Compression string `json:"compression"`
	Encryption  string `json:"encryption,omitempty"` // "age" or empty
	// MAC names the authentication trailer after the payload: macHMACSHA256
	// or empty (none, the format of every object before it).
	MAC string `json:"mac,omitempty"`
}

// Compressions lists the accepted compression names, the default first.
var Compressions = []string{"zstd", "s2", "gzip", "none"}

// CheckCompression returns a clear error for an unknown compression name.
func CheckCompression(name string) error {
	if !slices.Contains(Compressions, name) {
		return fmt.Errorf("unknown compression %q: use one of %s", name, strings.Join(Compressions, ", "))
	}
	return nil
}

func writeHeader(w io.Writer, h Header) error {
	js, err := json.Marshal(h)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(js)))
	for _, b := range [][]byte{magic, n[:], js} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// ReadHeader reads the header at the front of an object, leaving r positioned
// at the payload. It checks nothing the payload would prove (see Decode):
// unknown fields are ignored, so newer objects stay readable.
func ReadHeader(r io.Reader) (Header, error) {
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, classifyRead(err, "header")
	}
	if !bytes.Equal(pre[:8], magic) {
		return Header{}, errBadMagic
	}
	n := binary.LittleEndian.Uint32(pre[8:])
	if n == 0 || n > maxHeaderLen {
		return Header{}, fmt.Errorf("%w: header length %d", ErrCorrupt, n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return Header{}, classifyRead(err, "header")
	}
	var h Header
	if err := json.Unmarshal(js, &h); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if err := CheckCompression(h.Compression); err != nil {
		return Header{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return h, nil
}

// classifyRead turns an early end of data into ErrCorrupt (a truncated
// object) and leaves other read errors (network, timeout) as they are, so
// callers can retry those.
func classifyRead(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	return err
}

// sourceReader remembers the last error of the underlying reader so that a
// decode failure can be blamed on the transport or on the data.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func newBufferedSource(r io.Reader) (*sourceReader, *bufio.Reader) {
	s := &sourceReader{r: r}
	return s, bufio.NewReaderSize(s, 256<<10)
}
