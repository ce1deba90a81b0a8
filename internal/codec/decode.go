package codec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
)

// ErrWrongKey: the configured identities cannot decrypt the object.
var ErrWrongKey = errors.New("the configured decryption key does not match this object: it was encrypted for another age recipient")

// SourceError is a failure of the reader an object came from (network,
// timeout), as opposed to the object's bytes or the destination: the only
// kind of decode failure that a new attempt may cure.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "reading object: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// ErrNoKey: the object is encrypted and no identity was configured.
var ErrNoKey = errors.New("object is encrypted but no decryption key is configured: set WALSHIP_ENCRYPTION_KEY_FILE (or --encryption-key-file) to the age identity file")

// Decoder turns stored objects back into the original bytes.
type Decoder struct {
	// Identities decrypt age-encrypted objects.
	Identities []age.Identity
}

// Decode reads an object from src and writes the original bytes to dst,
// verifying size and checksum. When wantName is set, the object must have been
// stored under that name. A failure caused by the data is ErrCorrupt; a
// failure of src itself (network, timeout) is returned as it is.
func (d *Decoder) Decode(src io.Reader, dst io.Writer, wantName string) (Header, error) {
	s, br := newBufferedSource(src)
	fail := func(h Header, format string, args ...any) (Header, error) {
		if s.err != nil {
			return h, &SourceError{s.err}
		}
		return h, fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	h, err := ReadHeader(br)
	if err != nil {
		if s.err != nil {
			return h, &SourceError{s.err}
		}
		return h, err
	}
	if wantName != "" && h.Name != wantName {
		return h, fmt.Errorf("%w: object holds %q, not %q", ErrCorrupt, h.Name, wantName)
	}
	var payload io.Reader = br
	switch h.Encryption {
	case "":
	case "age":
		if len(d.Identities) == 0 {
			return h, ErrNoKey
		}
		r, err := age.Decrypt(br, d.Identities...)
		if err != nil {
			var noMatch *age.NoIdentityMatchError
			if errors.As(err, &noMatch) {
				return h, ErrWrongKey
			}
			return fail(h, "decryption: %v", err)
		}
		payload = r
	default:
		return h, fmt.Errorf("%w: unknown encryption %q", ErrCorrupt, h.Encryption)
	}
	dr, err := decompressor(h.Compression, payload)
	if err != nil {
		return fail(h, "%s stream: %v", h.Compression, err)
	}
	defer dr.Close()
	sum, want := NewChecksum(), h.Checksum
	if want == "" && h.SHA256 != "" {
		sum, want = sha256.New(), h.SHA256
	}
	n, err := io.Copy(io.MultiWriter(dst, sum), dr)
	if err != nil {
		if s.err == nil && isWriteErr(err) {
			return h, err
		}
		return fail(h, "%s stream: %v", h.Compression, err)
	}
	if n != h.Size {
		return fail(h, "decoded %d bytes, header says %d", n, h.Size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return fail(h, "checksum of decoded bytes is %s, header says %q", got, want)
	}
	return h, nil
}

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
	return h, syncDir(dirOf(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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

func decompressor(name string, r io.Reader) (io.ReadCloser, error) {
	switch name {
	case "zstd":
		return newZstdReader(r)
	case "s2":
		return io.NopCloser(s2.NewReader(r)), nil
	case "gzip":
		return gzip.NewReader(r)
	case "none":
		return io.NopCloser(r), nil
	}
	return nil, CheckCompression(name)
}
