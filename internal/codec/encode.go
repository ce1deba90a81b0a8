package codec

import (
	"bytes"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Encoder turns original bytes into a stored object.
type Encoder struct {
	Compression string // one of Compressions; empty means zstd
	Level       int    // compression level; 0 means the codec's default
	// Recipients, when set, encrypt the payload with age for these keys.
	Recipients []age.Recipient
	// MACKey, the repository's authentication key, when set, ends every
	// object with a trailer that proves it was written with the key (see
	// mac.go). Without it objects have the format they always had.
	MACKey []byte
}

func (e *Encoder) compression() string {
	if e.Compression == "" {
		return "zstd"
	}
	return e.Compression
}

// Encode writes h and the encoded src to dst. The caller fills h.Name,
// h.Size and h.Checksum; Encode fills the codec fields.
func (e *Encoder) Encode(dst io.Writer, h Header, src io.Reader) error {
	if len(e.MACKey) == 0 {
		return e.encode(dst, h, src)
	}
	if err := checkMACKey(e.MACKey); err != nil {
		return err
	}
	mac := newObjectMAC(e.MACKey)
	if err := e.encode(io.MultiWriter(dst, mac), h, src); err != nil {
		return err
	}
	_, err := dst.Write(mac.Sum(nil))
	return err
}

// codecFields fills the header fields that say how the payload is encoded.
func (e *Encoder) codecFields(h *Header) {
	h.Compression, h.Encryption, h.MAC = e.compression(), "", ""
	if len(e.Recipients) > 0 {
		h.Encryption = "age"
	}
	if len(e.MACKey) > 0 {
		h.MAC = macHMACSHA256
	}
}

// encode writes the object without its trailer.
func (e *Encoder) encode(dst io.Writer, h Header, src io.Reader) error {
	e.codecFields(&h)
	if err := CheckCompression(h.Compression); err != nil {
		return err
	}
	if err := writeHeader(dst, h); err != nil {
		return err
	}
	var sink io.Writer = dst
	var closers []io.Closer
	if len(e.Recipients) > 0 {
		enc, err := age.Encrypt(dst, e.Recipients...)
		if err != nil {
			return fmt.Errorf("encryption: %w", err)
		}
		sink, closers = enc, append(closers, enc)
	}
	cw, err := e.compressor(sink)
	if err != nil {
		return err
	}
	if _, err := io.Copy(cw, src); err != nil {
		return err
	}
	// Close the compressor first, then the encryption layer under it.
	if err := cw.Close(); err != nil {
		return err
	}
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].Close(); err != nil {
			return err
		}
	}
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func (e *Encoder) compressor(w io.Writer) (io.WriteCloser, error) {
	switch e.compression() {
	case "zstd":
		// The fastest level by default: on 2 cores the archiver is bound by
		// CPU, and level 3 costs 35% more time on random-text WAL for a
		// ratio of 2.02 instead of 2.09 (6.8 instead of 6.2 on pgbench WAL).
		level := zstd.SpeedFastest
		if e.Level != 0 {
			level = zstd.EncoderLevelFromZstd(e.Level)
		}
		return newZstdWriter(w, level)
	case "s2":
		opts := []s2.WriterOption{s2.WriterConcurrency(1)}
		if e.Level > 1 {
			opts = append(opts, s2.WriterBetterCompression())
		}
		return s2.NewWriter(w, opts...), nil
	case "gzip":
		level := gzip.DefaultCompression
		if e.Level != 0 {
			level = e.Level
		}
		return gzip.NewWriterLevel(w, level)
	case "none":
		return nopWriteCloser{w}, nil
	}
	return nil, CheckCompression(e.Compression)
}

// EncodeFile reads the file at path once and returns it as a stored object
// named name, with its header. Memory holds only
// the encoded bytes: the header goes first with a placeholder checksum that
// is filled in, at a fixed width, once the file has been read, and the
// trailer, when there is one, is computed after. A caller done with the
// object may hand it to Release, for the next EncodeFile.
func (e *Encoder) EncodeFile(path, name string) ([]byte, Header, error) {
	if len(e.MACKey) > 0 {
		if err := checkMACKey(e.MACKey); err != nil {
			return nil, Header{}, err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, Header{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, Header{}, err
	}
	size := fi.Size()
	h := Header{Name: name, Size: size, Checksum: strings.Repeat("0", checksumLen)}
	// A buffer from earlier objects (see Release), else one an eighth of the
	// file: WAL usually compresses 5-15x, and a buffer sized for the worst
	// case costs the zeroing of every page of it (measured: a quarter of
	// wal-push's CPU). Incompressible files grow it by doubling.
	buf := bytes.NewBuffer(reuse())
	buf.Grow(int(size/8) + 64<<10)
	hr := &hashingReader{r: f, h: NewChecksum()}
	if err := e.encode(buf, h, hr); err != nil {
		return nil, Header{}, fmt.Errorf("encoding %s: %w", path, err)
	}
	if hr.n != size {
		return nil, Header{}, fmt.Errorf("%s changed size while it was being archived (%d, then %d bytes); nothing was stored", path, size, hr.n)
	}
	obj := buf.Bytes()
	slot := []byte(`"xxh3":"` + h.Checksum + `"`)
	at := bytes.Index(obj[:min(len(obj), maxHeaderLen+12)], slot)
	if at < 0 {
		return nil, Header{}, fmt.Errorf("encoding %s: header checksum slot not found", path)
	}
	h.Checksum = ChecksumOf(hr.h)
	copy(obj[at+len(`"xxh3":"`):], h.Checksum)
	e.codecFields(&h)
	if len(e.MACKey) > 0 {
		mac := newObjectMAC(e.MACKey)
		mac.Write(obj)
		obj = mac.Sum(obj)
	}
	return obj, h, nil
}

type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// buffers holds object buffers between EncodeFile calls: growing a fresh
// buffer cost the agent 15% of its CPU in zeroing pages (measured with
// WALSHIP_CPUPROFILE while it shipped pgbench WAL).
var buffers sync.Pool

// Release gives an object returned by EncodeFile back for reuse. The caller
// must not touch obj afterwards.
func Release(obj []byte) {
	if cap(obj) > 0 {
		buffers.Put(&obj)
	}
}

func reuse() []byte {
	if b, ok := buffers.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}
