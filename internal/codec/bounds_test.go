package codec

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// countingWriter counts what reaches the destination.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// bomb is an object whose header promises size bytes and whose payload
// inflates to inflated zero bytes.
func bomb(t *testing.T, comp string, size, inflated int64) []byte {
	t.Helper()
	var obj bytes.Buffer
	h := Header{Name: "000000010000000000000001", Size: size, Checksum: strings.Repeat("0", checksumLen)}
	if err := (&Encoder{Compression: comp}).Encode(&obj, h, io.LimitReader(zeros{}, inflated)); err != nil {
		t.Fatal(err)
	}
	return obj.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A crafted object whose header says 16 MiB but which inflates to far more
// must not fill the disk behind wal-fetch: the decoder writes at most the
// promised size and refuses the object.
func TestDecompressionBombStopsAtHeaderSize(t *testing.T) {
	const size = 16 << 20
	for _, comp := range Compressions {
		inflated := int64(256 << 20)
		if comp == "none" {
			inflated = size + 4<<20 // stored as it is: keep the test's memory small
		}
		obj := bomb(t, comp, size, inflated)
		var dst countingWriter
		_, err := (&Decoder{}).Decode(bytes.NewReader(obj), &dst, "")
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "inflates beyond the size its header promises") {
			t.Errorf("%s: want ErrCorrupt for inflating beyond the header, got %v", comp, err)
		}
		if dst.n > size {
			t.Errorf("%s: %d bytes written, more than the %d the header promises", comp, dst.n, size)
		}
	}
}

// A header that promises more than the caller allows for that kind of
// object is refused before a byte is decoded.
func TestHeaderSizeAboveCapIsRefused(t *testing.T) {
	obj, _, err := (&Encoder{}).EncodeFile(writeTemp(t, walLike(t, 2<<20)), "000000010000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	shared := &Decoder{}
	for _, dec := range []*Decoder{{MaxSize: 1 << 20}, shared.WithMaxSize(1 << 20)} {
		var dst countingWriter
		_, err := dec.Decode(bytes.NewReader(obj), &dst, "")
		if !errors.Is(err, ErrCorrupt) || dst.n != 0 {
			t.Errorf("want ErrCorrupt before any byte is written, got %v after %d bytes", err, dst.n)
		}
	}
	if shared.MaxSize != 0 {
		t.Error("WithMaxSize changed the shared decoder")
	}
	if _, err := (&Decoder{MaxSize: 2 << 20}).Decode(bytes.NewReader(obj), io.Discard, ""); err != nil {
		t.Errorf("an object of exactly the cap: %v", err)
	}
	if _, err := (&Decoder{}).Decode(bytes.NewReader(obj), io.Discard, ""); err != nil {
		t.Errorf("default cap: %v", err)
	}
	negative := bomb(t, "none", -1, 0)
	if _, err := (&Decoder{}).Decode(bytes.NewReader(negative), io.Discard, ""); !errors.Is(err, ErrCorrupt) {
		t.Errorf("negative size: %v", err)
	}
}

// zstdObject wraps a raw zstd stream of data in a walship header.
func zstdObject(t *testing.T, frame, data []byte) []byte {
	t.Helper()
	var obj bytes.Buffer
	if err := writeHeader(&obj, Header{Name: "x", Size: int64(len(data)), Checksum: Checksum(data), Compression: "zstd"}); err != nil {
		t.Fatal(err)
	}
	obj.Write(frame)
	return obj.Bytes()
}

// Frames that ask for a window larger than walship ever wrote would make the
// decoder allocate it: refused.
func TestLargeZstdWindowIsRefused(t *testing.T) {
	data := make([]byte, 2<<20)
	rand.Read(data)
	var stream bytes.Buffer
	w, _ := zstd.NewWriter(&stream, zstd.WithWindowSize(64<<20), zstd.WithEncoderConcurrency(1))
	w.Write(data)
	w.Close()
	// A single-segment frame declares its content size as its window.
	single, _ := zstd.NewWriter(nil, zstd.WithWindowSize(64<<20), zstd.WithSingleSegment(true))
	big := make([]byte, 32<<20)
	rand.Read(big[:1<<20])
	cases := map[string][]byte{
		"64 MiB window":         zstdObject(t, stream.Bytes(), data),
		"32 MiB single segment": zstdObject(t, single.EncodeAll(big, nil), big),
	}
	for name, obj := range cases {
		var dst countingWriter
		_, err := (&Decoder{}).Decode(bytes.NewReader(obj), &dst, "")
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "zstd stream") {
			t.Errorf("%s: want ErrCorrupt for the window, got %v", name, err)
		}
		if dst.n != 0 {
			t.Errorf("%s: %d bytes written", name, dst.n)
		}
	}
	// What walship wrote before the 1 MiB window, zstd's default 8 MiB, still decodes.
	var old bytes.Buffer
	w, _ = zstd.NewWriter(&old, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	w.Write(data)
	w.Close()
	var out bytes.Buffer
	if _, err := (&Decoder{}).Decode(bytes.NewReader(zstdObject(t, old.Bytes(), data)), &out, ""); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Errorf("8 MiB window of earlier versions: %v", err)
	}
}
