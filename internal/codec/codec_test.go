package codec

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"
)

// walLike is half random, half repetitive, like a real WAL segment.
func walLike(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b[:n/2])
	copy(b[n/2:], bytes.Repeat([]byte("INSERT pgbench_history "), n/40))
	return b
}

func writeTemp(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "000000010000000000000001")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTripEveryCodec(t *testing.T) {
	plain := walLike(t, 1<<20)
	path := writeTemp(t, plain)
	id, _ := age.GenerateX25519Identity()
	for _, comp := range Compressions {
		for _, encrypt := range []bool{false, true} {
			enc := &Encoder{Compression: comp}
			dec := &Decoder{}
			if encrypt {
				enc.Recipients = []age.Recipient{id.Recipient()}
				dec.Identities = []age.Identity{id}
			}
			obj, h, err := enc.EncodeFile(path, "000000010000000000000001")
			if err != nil {
				t.Fatalf("%s/%v: %v", comp, encrypt, err)
			}
			if h.Size != int64(len(plain)) || h.Compression != comp {
				t.Fatalf("%s: header %+v", comp, h)
			}
			if comp != "none" && len(obj) >= len(plain) {
				t.Errorf("%s: %d bytes did not shrink (%d)", comp, len(plain), len(obj))
			}
			if encrypt && bytes.Contains(obj, []byte("INSERT pgbench_history")) {
				t.Errorf("%s: encrypted object contains plain text", comp)
			}
			var out bytes.Buffer
			got, err := dec.Decode(bytes.NewReader(obj), &out, "000000010000000000000001")
			if err != nil {
				t.Fatalf("%s/%v decode: %v", comp, encrypt, err)
			}
			if !bytes.Equal(out.Bytes(), plain) || got.Checksum != h.Checksum || h.Checksum != Checksum(plain) {
				t.Fatalf("%s/%v: decoded bytes differ", comp, encrypt)
			}
		}
	}
}

func TestStreamingChecksumMatchesOneShot(t *testing.T) {
	b := walLike(t, 3<<20+17)
	h := NewChecksum()
	h.Write(b[:1000])
	h.Write(b[1000:])
	if got := ChecksumOf(h); got != Checksum(b) || len(got) != checksumLen {
		t.Fatalf("streaming %s, one-shot %s", got, Checksum(b))
	}
}

// Every object carries the XXH3 checksum of its bytes: one without reads
// as corrupt.
func TestObjectsWithoutChecksumAreCorrupt(t *testing.T) {
	plain := walLike(t, 64<<10)
	var obj bytes.Buffer
	if err := (&Encoder{}).Encode(&obj, Header{Name: "x", Size: int64(len(plain))}, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := (&Decoder{}).Decode(&obj, &out, "x"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("object without checksum: err %v", err)
	}
}

func TestCorruptionIsDetected(t *testing.T) {
	plain := walLike(t, 256<<10)
	obj, _, err := (&Encoder{Compression: "none"}).EncodeFile(writeTemp(t, plain), "000000010000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(obj)
	flipped[len(flipped)-100] ^= 0xff
	zobj, _, _ := (&Encoder{}).EncodeFile(writeTemp(t, plain), "000000010000000000000001")
	cases := map[string][]byte{
		"flipped byte":   flipped,
		"truncated":      obj[:len(obj)/2],
		"truncated zstd": zobj[:len(zobj)-10],
		"flipped zstd byte": func() []byte {
			b := bytes.Clone(zobj)
			b[len(b)-1000] ^= 0x10
			return b
		}(),
		"truncated header": obj[:10],
		"not walship":      []byte("hello world, this is not an object"),
		"empty":            nil,
	}
	for name, data := range cases {
		_, err := (&Decoder{}).Decode(bytes.NewReader(data), io.Discard, "000000010000000000000001")
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: want ErrCorrupt, got %v", name, err)
		}
	}
	_, err = (&Decoder{}).Decode(bytes.NewReader(obj), io.Discard, "000000010000000000000002")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "000000010000000000000001") {
		t.Errorf("wrong name: %v", err)
	}
}

// TestReusedZstdStreamsStayApart: encoders and decoders go back to pools
// between objects. Concurrent streams of different contents, with damaged
// objects among them, must each decode to their own bytes.
func TestReusedZstdStreamsStayApart(t *testing.T) {
	dir := t.TempDir()
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			errs <- func() error {
				for i := range 25 {
					plain := walLike(t, (64<<10)*(1+(w*25+i)%9))
					plain[0], plain[1] = byte(w), byte(i)
					path := filepath.Join(dir, fmt.Sprintf("%d-%d", w, i))
					if err := os.WriteFile(path, plain, 0o600); err != nil {
						return err
					}
					obj, _, err := (&Encoder{}).EncodeFile(path, "x")
					if err != nil {
						return err
					}
					if i%3 == 0 { // a damaged object first: its decoder must not be reused half-way
						bad := bytes.Clone(obj[:len(obj)*2/3])
						if _, err := (&Decoder{}).Decode(bytes.NewReader(bad), io.Discard, ""); !errors.Is(err, ErrCorrupt) {
							return fmt.Errorf("truncated object %d-%d: want ErrCorrupt, got %v", w, i, err)
						}
					}
					var out bytes.Buffer
					if _, err := (&Decoder{}).Decode(bytes.NewReader(obj), &out, ""); err != nil {
						return err
					}
					if !bytes.Equal(out.Bytes(), plain) {
						return fmt.Errorf("object %d-%d decoded to other bytes", w, i)
					}
					Release(obj)
				}
				return nil
			}()
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

var errNet = errors.New("connection reset by peer")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errNet
	}
	if len(p) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

func TestTransportErrorIsNotCorruption(t *testing.T) {
	obj, _, err := (&Encoder{}).EncodeFile(writeTemp(t, walLike(t, 512<<10)), "000000010000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Decoder{}).Decode(&failingReader{r: bytes.NewReader(obj), after: len(obj) / 2}, io.Discard, "")
	if errors.Is(err, ErrCorrupt) || !errors.Is(err, errNet) {
		t.Fatalf("want transport error, got %v", err)
	}
}

func TestKeys(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	os.WriteFile(keyFile, []byte("# test key\n"+id.String()+"\n"), 0o600)
	rs, ids, err := Keys("", keyFile)
	if err != nil || len(rs) != 1 || len(ids) != 1 {
		t.Fatalf("Keys from file: %v %d %d", err, len(rs), len(ids))
	}
	if _, _, err := Keys("not-a-key", ""); err == nil || strings.Contains(err.Error(), "not-a-key") {
		t.Errorf("bad recipient must fail without echoing the value: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("AGE-SECRET-KEY-1SECRETSECRET\n"), 0o600)
	if _, _, err := Keys("", bad); err == nil || strings.Contains(err.Error(), "SECRETSECRET") {
		t.Errorf("bad key file must fail without echoing the key: %v", err)
	}
	// Encrypted for one key, decrypted with none or another: a clear error.
	obj, _, _ := (&Encoder{Recipients: rs}).EncodeFile(writeTemp(t, walLike(t, 4096)), "000000010000000000000001")
	if _, err := (&Decoder{}).Decode(bytes.NewReader(obj), io.Discard, ""); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
	_, err = (&Decoder{Identities: []age.Identity{other}}).Decode(bytes.NewReader(obj), io.Discard, "")
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("wrong key: %v", err)
	}
}

func TestDecodeToFileIsAtomic(t *testing.T) {
	plain := walLike(t, 64<<10)
	obj, _, _ := (&Encoder{}).EncodeFile(writeTemp(t, plain), "000000010000000000000001")
	dir := t.TempDir()
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if _, err := (&Decoder{}).DecodeToFile(bytes.NewReader(obj[:len(obj)-5]), dest, "", true); err == nil {
		t.Fatal("truncated object decoded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed decode left files: %v", ents)
	}
	if _, err := (&Decoder{}).DecodeToFile(bytes.NewReader(obj), dest, "", true); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, plain) {
		t.Fatal("content differs")
	}
}

// A destination that cannot be written (a full disk) is reported as that,
// never as a damaged object, for every compression.
func TestFullDiskIsNotDamage(t *testing.T) {
	for _, c := range Compressions {
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
		var obj bytes.Buffer
		h := Header{Name: "x", Size: int64(len(data)), Checksum: Checksum(data)}
		if err := (&Encoder{Compression: c}).Encode(&obj, h, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		_, err := (&Decoder{}).Decode(bytes.NewReader(obj.Bytes()), Destination(&fullDisk{}), "x")
		if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: a full disk reported as %v", c, err)
		}
	}
}

// fullDisk takes 1 MiB, then fails as a full disk does.
type fullDisk struct{ n int }

func (f *fullDisk) Write(p []byte) (int, error) {
	if f.n+len(p) > 1<<20 {
		return 0, syscall.ENOSPC
	}
	f.n += len(p)
	return len(p), nil
}
