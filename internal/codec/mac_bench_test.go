package codec

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkMAC measures what the authentication trailer costs per 16 MiB
// WAL segment: wal-push (EncodeFile) and wal-fetch (Decode) with and without
// the key, and the HMAC alone over the stored object. It uses the first
// segment in WALSHIP_WAL_SAMPLES, else a synthetic one (half random, half
// repetitive: it compresses to about half, worse than real WAL).
func BenchmarkMAC(b *testing.B) {
	path := benchSegment(b)
	for _, keyed := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"mac", testKey}} {
		enc := &Encoder{MACKey: keyed.key}
		dec := &Decoder{MACKey: keyed.key}
		b.Run("encode/"+keyed.name, func(b *testing.B) {
			for b.Loop() {
				obj, h, err := enc.EncodeFile(path, "000000010000000000000001")
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(h.Size)
				Release(obj)
			}
		})
		obj, h, err := enc.EncodeFile(path, "000000010000000000000001")
		if err != nil {
			b.Fatal(err)
		}
		b.Run("decode/"+keyed.name, func(b *testing.B) {
			b.SetBytes(h.Size)
			for b.Loop() {
				if _, err := dec.Decode(bytes.NewReader(obj), io.Discard, "000000010000000000000001"); err != nil {
					b.Fatal(err)
				}
			}
		})
		if keyed.key != nil {
			b.Run("hmac-only", func(b *testing.B) {
				b.SetBytes(int64(len(obj)))
				for b.Loop() {
					m := hmac.New(sha256.New, keyed.key)
					m.Write(obj)
					m.Sum(nil)
				}
				b.ReportMetric(float64(len(obj)), "stored-bytes")
			})
		}
	}
}

func benchSegment(b *testing.B) string {
	if dir := os.Getenv("WALSHIP_WAL_SAMPLES"); dir != "" {
		if files, _ := filepath.Glob(filepath.Join(dir, "0*")); len(files) > 0 {
			return files[0]
		}
	}
	p := filepath.Join(b.TempDir(), "000000010000000000000001")
	if err := os.WriteFile(p, walLike(b, 16<<20), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}
