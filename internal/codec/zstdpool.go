package codec

import (
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstd encoders and decoders are reused across objects: a new one allocates
// and clears its tables and window for every WAL segment or backup object
// (see BenchmarkEncodeRealWAL for what that costs). Only one that finished
// its stream cleanly goes back to a pool; after an error it is dropped.

// zstdWindow: a 1 MiB window compresses WAL as well as 8 MiB (measured on
// pgbench WAL: 14.8 vs 14.9) and keeps encoder and decoder memory small.
const zstdWindow = 1 << 20

// zstdMaxWindow is the largest window a decoder accepts: zstd's default of
// 8 MiB, which walship wrote before zstdWindow. A frame that asks for more
// (up to 512 MiB by default, or a single-segment frame as large as its
// content) was not written by walship and would make the decoder allocate it.
const zstdMaxWindow = 8 << 20

var (
	zstdEncoders [zstd.SpeedBestCompression + 1]sync.Pool // by level
	zstdDecoders sync.Pool
)

// pooledEncoder is a zstd stream whose Close returns the encoder to its pool.
type pooledEncoder struct {
	*zstd.Encoder
	pool *sync.Pool
}

func newZstdWriter(w io.Writer, level zstd.EncoderLevel) (io.WriteCloser, error) {
	pool := &zstdEncoders[level]
	if enc, ok := pool.Get().(*zstd.Encoder); ok {
		enc.Reset(w)
		return &pooledEncoder{enc, pool}, nil
	}
	// One goroutine per stream: walship parallelises across files instead.
	// Not WithLowerEncoderMem: its history buffer is the window plus one
	// block, so the encoder moved 1 MiB down after every 128 KiB block,
	// eight times the input (11% of the agent's CPU). No frame checksum:
	// every object carries the XXH3 of its original bytes, which the
	// decoder checks.
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(zstdWindow), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	return &pooledEncoder{enc, pool}, nil
}

func (p *pooledEncoder) Close() error {
	err := p.Encoder.Close()
	if err == nil {
		p.Encoder.Reset(nil) // drop the reference to the destination
		p.pool.Put(p.Encoder)
	}
	p.Encoder = nil
	return err
}

// pooledDecoder is a zstd stream whose Close returns the decoder to the pool
// once it has read the whole stream.
type pooledDecoder struct {
	dec *zstd.Decoder
	eof bool
}

func newZstdReader(r io.Reader) (io.ReadCloser, error) {
	if dec, ok := zstdDecoders.Get().(*zstd.Decoder); ok {
		if err := dec.Reset(r); err != nil {
			dec.Close()
			return nil, err
		}
		return &pooledDecoder{dec: dec}, nil
	}
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow))
	if err != nil {
		return nil, err
	}
	return &pooledDecoder{dec: dec}, nil
}

func (p *pooledDecoder) Read(b []byte) (int, error) {
	n, err := p.dec.Read(b)
	if err == io.EOF {
		p.eof = true
	}
	return n, err
}

// WriteTo lets io.Copy hand the decoder its destination directly.
func (p *pooledDecoder) WriteTo(w io.Writer) (int64, error) {
	n, err := p.dec.WriteTo(w)
	p.eof = err == nil
	return n, err
}

func (p *pooledDecoder) Close() error {
	if p.dec == nil {
		return nil
	}
	if p.eof && p.dec.Reset(nil) == nil {
		zstdDecoders.Put(p.dec)
	} else {
		p.dec.Close()
	}
	p.dec = nil
	return nil
}
