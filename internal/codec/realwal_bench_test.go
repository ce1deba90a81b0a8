package codec

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkEncodeRealWAL measures the codecs on real segments named by
// WALSHIP_WAL_SAMPLES (a folder of WAL files); skipped without it.
func BenchmarkEncodeRealWAL(b *testing.B) {
	dir := os.Getenv("WALSHIP_WAL_SAMPLES")
	if dir == "" {
		b.Skip("set WALSHIP_WAL_SAMPLES to a folder of WAL segments")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "0*"))
	for _, comp := range Compressions {
		b.Run(comp, func(b *testing.B) {
			enc := &Encoder{Compression: comp}
			var in, out int64
			for i := 0; b.Loop(); i++ {
				f := files[i%len(files)]
				obj, h, err := enc.EncodeFile(f, filepath.Base(f))
				if err != nil {
					b.Fatal(err)
				}
				in += h.Size
				out += int64(len(obj))
				if i == 0 {
					b.SetBytes(h.Size)
				}
				if _, err := (&Decoder{}).Decode(bytes.NewReader(obj), io.Discard, ""); err != nil {
					b.Fatal(err)
				}
				Release(obj) // as the archiver does
			}
			b.ReportMetric(float64(in)/float64(out), "ratio")
		})
	}
}
