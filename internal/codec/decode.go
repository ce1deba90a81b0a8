package codec

import (
	"bufio"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"

	"github.com/walship/walship/internal/fault"
	"github.com/walship/walship/internal/fsync"
)

// ErrWrongKey: the configured identities cannot decrypt the object.
var ErrWrongKey = errors.New("the configured decryption key does not match this object: it was encrypted for another age recipient")

// SourceError is a failure of the reader an object came from (network,
// timeout), as opposed to the object's bytes or the destination: the only
// kind of decode failure that a new attempt may cure.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "reading object: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// The settings codec's messages name (see fault.Setting).
const (
	// DecryptionKey: the age identities that decrypt objects.
	DecryptionKey fault.Setting = "decryption key (an age identity)"
	// EncryptionRecipient: the age public keys objects are encrypted for.
	EncryptionRecipient fault.Setting = "encryption recipient"
)

// ErrNoKey: the object is encrypted and no identity was configured. A
// *fault.SettingError about DecryptionKey.
var ErrNoKey error = fault.Settingf(DecryptionKey, "object is encrypted but no %s is configured", DecryptionKey)

// Decoder turns stored objects back into the original bytes. A Decoder is
// safe for concurrent use; set a per-call limit with WithMaxSize.
type Decoder struct {
	// Identities decrypt age-encrypted objects.
	Identities []age.Identity
	// MaxSize refuses, before decompressing, an object whose header promises
	// more original bytes: the most that kind of object can hold. 0 means
	// DefaultMaxSize.
	MaxSize int64
	// RequireEncryption refuses objects that are not encrypted: in an
	// encrypted repository such an object was planted or altered.
	RequireEncryption bool
	// MACKey, the repository's authentication key, refuses every object
	// that does not end in a valid trailer made with it (see mac.go).
	// Without it, a trailer is skipped and not checked.
	MACKey []byte
}

// DefaultMaxSize is the largest object a Decoder accepts unless told
// otherwise: PostgreSQL's largest WAL segment, 1 GiB, is walship's largest
// object.
const DefaultMaxSize = 1 << 30

// WithMaxSize returns a copy of d that refuses objects promising more than n
// original bytes, for callers that share one Decoder among kinds of objects.
func (d *Decoder) WithMaxSize(n int64) *Decoder {
	c := *d
	c.MaxSize = n
	return &c
}

func (d *Decoder) maxSize() int64 {
	if d.MaxSize > 0 {
		return d.MaxSize
	}
	return DefaultMaxSize
}

// Decode reads an object from src and writes the original bytes to dst,
// verifying size and checksum, and, with MACKey, the object's trailer. When
// wantName is set, the object must have been stored under that name. A
// failure caused by the data is ErrCorrupt (ErrTampered when it shows the
// object was not written with this repository's keys); a failure of src
// itself (network, timeout) is a SourceError.
//
// dst never receives more than the header's Size, but it receives bytes
// before the object's end is read: until Decode returns nil they are
// unchecked and, with MACKey, unauthenticated. Write them where a failure
// can discard them (a temporary file, as DecodeToFile does).
func (d *Decoder) Decode(src io.Reader, dst io.Writer, wantName string) (Header, error) {
	if len(d.MACKey) > 0 {
		if err := checkMACKey(d.MACKey); err != nil {
			return Header{}, err
		}
	}
	s, br := newBufferedSource(src)
	x := &decoding{d: d, src: s, in: br, want: wantName}
	if len(d.MACKey) > 0 {
		// Everything but the trailer goes through the MAC, the header too.
		x.auth = newTrailerReader(br, newObjectMAC(d.MACKey))
		x.in = x.auth
	}
	err := x.run(br, dst)
	return x.h, err
}

// decoding is the state of one Decode.
type decoding struct {
	d    *Decoder
	src  *sourceReader
	in   io.Reader      // the object; after the header, its payload (with the trailer unless stripped)
	auth *trailerReader // with MACKey: checks the trailer
	want string         // the name the caller expects, if any
	h    Header
}

func (x *decoding) run(br *bufio.Reader, dst io.Writer) error {
	h, err := ReadHeader(x.in)
	x.h = h
	switch {
	case x.src.err != nil:
		return &SourceError{x.src.err}
	case errors.Is(err, errBadMagic):
		return err // not walship's at all: not worth reading on
	case err != nil:
		return x.refuse(err)
	}
	if err := x.admit(); err != nil {
		return err
	}
	if h.MAC != "" && x.auth == nil {
		x.in = newTrailerReader(br, nil) // no key: strip the trailer unchecked
	}
	payload, err := x.decrypt()
	if err != nil {
		return err
	}
	if err := x.decompress(payload, dst); err != nil {
		return err
	}
	return x.end()
}

// admit checks what the header alone tells, before any byte is decoded.
func (x *decoding) admit() error {
	h, keyed, wantName := x.h, x.auth != nil, x.want
	switch {
	case h.Size < 0:
		return x.refuse(fmt.Errorf("%w: header says %d bytes", ErrCorrupt, h.Size))
	case h.Size > x.d.maxSize():
		return fmt.Errorf("%w: %s promises %d bytes, more than the %d such an object may hold", ErrCorrupt, h.Name, h.Size, x.d.maxSize())
	case wantName != "" && h.Name != wantName && keyed:
		// Authentic or not, it is not what was stored there.
		return x.refuse(fmt.Errorf("%w: the object stored as %s holds %s: it was moved or copied there by someone who can write to the store", ErrTampered, wantName, h.Name))
	case wantName != "" && h.Name != wantName:
		return fmt.Errorf("%w: object holds %q, not %q", ErrCorrupt, h.Name, wantName)
	case keyed && h.MAC == "":
		return fmt.Errorf("%w: %s is not authenticated, but this repository is: it was altered, or written without the repository key", ErrTampered, h.Name)
	case h.MAC != "" && h.MAC != macHMACSHA256 && keyed:
		return fmt.Errorf("%w: %s carries an unknown authentication %q: it was altered, or written without the repository key", ErrTampered, h.Name, h.MAC)
	case h.MAC != "" && h.MAC != macHMACSHA256:
		return fmt.Errorf("%w: unknown authentication %q", ErrCorrupt, h.MAC)
	case x.d.RequireEncryption && h.Encryption == "":
		return fmt.Errorf("%w: %s is not encrypted, but this repository is: it was altered or planted by someone who can write to the store", ErrTampered, h.Name)
	}
	return nil
}

// decrypt returns the reader of the compressed payload.
func (x *decoding) decrypt() (io.Reader, error) {
	switch x.h.Encryption {
	case "":
		return x.in, nil
	case "age":
	default:
		return nil, x.refuse(fmt.Errorf("%w: unknown encryption %q", ErrCorrupt, x.h.Encryption))
	}
	if len(x.d.Identities) == 0 {
		return nil, ErrNoKey
	}
	r, err := age.Decrypt(x.in, x.d.Identities...)
	var noMatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &noMatch):
		return nil, x.refuse(ErrWrongKey) // unless the MAC shows the object was altered
	case err != nil:
		return nil, x.fail("decryption: %v", err)
	}
	return r, nil
}

// errInflates: the payload holds more than the header's Size.
var errInflates = errors.New("inflates beyond the size its header promises")

// decompress writes the payload's original bytes to dst, never more than the
// header's Size, and checks their size and checksum.
func (x *decoding) decompress(payload io.Reader, dst io.Writer) error {
	h := x.h
	dr, err := decompressor(h.Compression, payload)
	if err != nil {
		return x.fail("%s stream: %v", h.Compression, err)
	}
	defer dr.Close()
	sum, want := NewChecksum(), h.Checksum
	// The cap stops the decompressor within one block past Size: a crafted
	// stream cannot fill the disk or memory behind dst.
	out := &sizeCap{w: io.MultiWriter(dst, sum), left: h.Size}
	n, err := io.Copy(out, dr)
	switch {
	case errors.Is(err, errInflates):
		return x.fail("%s %v (%d bytes)", h.Name, errInflates, h.Size)
	case err != nil && x.src.err == nil && isWriteErr(err):
		return err
	case err != nil:
		return x.fail("%s stream: %v", h.Compression, err)
	case n != h.Size:
		return x.fail("decoded %d bytes, header says %d", n, h.Size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return x.fail("checksum of decoded bytes is %s, header says %q", got, want)
	}
	return nil
}

// end checks that the payload ended where the trailer starts and, with a
// key, the trailer.
func (x *decoding) end() error {
	if x.h.MAC == "" {
		return nil // the format before trailers: nothing follows the payload
	}
	t := x.in.(*trailerReader)
	ended, err := t.drain(0)
	switch {
	case x.src.err != nil:
		return &SourceError{x.src.err}
	case err != nil:
		return &SourceError{err} // a reader that misbehaves (no progress)
	case !ended:
		return x.refuse(fmt.Errorf("%w: bytes follow the payload", ErrCorrupt))
	case !t.complete():
		return x.refuse(fmt.Errorf("%w: truncated authentication trailer", ErrCorrupt))
	case x.auth != nil && !x.auth.authentic():
		return x.tampered()
	}
	return nil
}

// fail refuses the object for a reason given in words.
func (x *decoding) fail(format string, args ...any) error {
	if x.src.err != nil {
		return &SourceError{x.src.err}
	}
	return x.refuse(fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...)))
}

// refuse returns err, a failure caused by the object's bytes; with a key,
// the rest of the object is read first, and an object whose trailer does not
// match is reported as tampered instead: a damaged object cannot be told
// from an altered one, and a walship bug would show as an authentic object
// that still fails.
func (x *decoding) refuse(err error) error {
	if x.auth == nil {
		return err
	}
	ended, derr := x.auth.drain(x.maxStoredSize())
	switch {
	case x.src.err != nil:
		return &SourceError{x.src.err}
	case derr != nil:
		return &SourceError{derr}
	case !ended || !x.auth.authentic():
		return x.tampered()
	}
	return err
}

func (x *decoding) tampered() error {
	name := cmp.Or(x.want, x.h.Name, "the object")
	return fmt.Errorf("%w: %s does not carry this repository's authentication: it was altered, or written without the repository key", ErrTampered, name)
}

// maxStoredSize bounds what refuse reads to reach the trailer: more than
// any encoding of MaxSize original bytes (compression and encryption add
// well under an eighth to incompressible data), plus the header.
func (x *decoding) maxStoredSize() int64 {
	m := x.d.maxSize()
	return m + m/8 + maxHeaderLen + 1<<20
}

// sizeCap passes at most left bytes to w and fails the write that would
// pass more with errInflates.
type sizeCap struct {
	w    io.Writer
	left int64
}

func (c *sizeCap) Write(p []byte) (int, error) {
	over := int64(len(p)) > c.left
	if over {
		p = p[:c.left]
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	if err == nil && over {
		err = errInflates
	}
	return n, err
}

// Destination wraps the writer Decode writes to, so that a failure to write
// (a full disk) comes back as that failure and is never blamed on the
// object as damage. DecodeToFile does it itself.
func Destination(w io.Writer) io.Writer { return errWriter{w} }

// writeError marks errors of the destination so they are not blamed on the object.
type writeError struct{ error }

func (w writeError) Unwrap() error { return w.error }

func isWriteErr(err error) bool {
	var we writeError
	return errors.As(err, &we)
}

// DecodeToFile decodes src into path atomically: a temporary file in the same
// directory is written and renamed into place only once verified. With
// durable, the file and the rename are fsynced too.
func (d *Decoder) DecodeToFile(src io.Reader, path, wantName string, durable bool) (Header, error) {
	if len(d.MACKey) > 0 {
		if err := checkMACKey(d.MACKey); err != nil {
			return Header{}, err
		}
	}
	tmp, err := os.CreateTemp(dirOf(path), ".walship-tmp-*")
	if err != nil {
		return Header{}, fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	h, err := d.Decode(src, errWriter{tmp}, wantName)
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	var se *SourceError
	if err != nil && !errors.As(err, &se) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNoKey) && !errors.Is(err, ErrWrongKey) {
		err = fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err != nil {
		return h, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return h, fmt.Errorf("cannot write %s: %w", path, err)
	}
	if !durable {
		return h, nil
	}
	return h, fsync.Dir(dirOf(path))
}

type errWriter struct{ w io.Writer }

func (e errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}

// s2BlockSize is the block size of s2.NewWriter, which walship uses.
const s2BlockSize = 1 << 20

func decompressor(name string, r io.Reader) (io.ReadCloser, error) {
	switch name {
	case "zstd":
		return newZstdReader(r)
	case "s2":
		// Blocks of at most 1 MiB, the size walship's writer uses, instead
		// of the format's 4 MiB: a decoder buffer a crafted stream cannot grow.
		return io.NopCloser(s2.NewReader(r, s2.ReaderMaxBlockSize(s2BlockSize))), nil
	case "gzip":
		return gzip.NewReader(r)
	case "none":
		return io.NopCloser(r), nil
	}
	return nil, CheckCompression(name)
}
