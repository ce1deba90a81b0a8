package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/walship/walship/internal/fault"
)

var (
	testKey  = DeriveKey([]byte("a secret of the repository, 32 bytes at least"), "objects", "repo-1")
	otherKey = DeriveKey([]byte("a secret of the repository, 32 bytes at least"), "objects", "repo-2")
)

func encodeWith(t *testing.T, enc *Encoder, plain []byte) []byte {
	t.Helper()
	obj, _, err := enc.EncodeFile(writeTemp(t, plain), "000000010000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func decodeWith(dec *Decoder, obj []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := dec.Decode(bytes.NewReader(obj), &out, "000000010000000000000001")
	return out.Bytes(), err
}

// In an encrypted repository an object that is not encrypted was planted.
func TestRequireEncryptionRefusesPlainObjects(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	plain := walLike(t, 64<<10)
	dec := &Decoder{Identities: []age.Identity{id}, RequireEncryption: true}
	_, err := decodeWith(dec, encodeWith(t, &Encoder{}, plain))
	if !errors.Is(err, ErrTampered) || !errors.Is(err, ErrCorrupt) || !errors.Is(err, fault.ErrIntegrity) || !strings.Contains(err.Error(), "not encrypted") {
		t.Errorf("plain object: want ErrTampered, got %v", err)
	}
	got, err := decodeWith(dec, encodeWith(t, &Encoder{Recipients: []age.Recipient{id.Recipient()}}, plain))
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("encrypted object: %v", err)
	}
}

// Objects written with the key decode with it, through EncodeFile and
// Encode, with every compression, encrypted or not; a reader without the
// key still reads them.
func TestMACRoundTrip(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	plain := walLike(t, 300<<10)
	for _, comp := range Compressions {
		for _, encrypt := range []bool{false, true} {
			enc := &Encoder{Compression: comp, MACKey: testKey}
			dec := &Decoder{MACKey: testKey}
			if encrypt {
				enc.Recipients = []age.Recipient{id.Recipient()}
				dec.Identities = []age.Identity{id}
			}
			var streamed bytes.Buffer
			h := Header{Name: "000000010000000000000001", Size: int64(len(plain)), Checksum: Checksum(plain)}
			if err := enc.Encode(&streamed, h, bytes.NewReader(plain)); err != nil {
				t.Fatal(err)
			}
			for how, obj := range map[string][]byte{"file": encodeWith(t, enc, plain), "stream": streamed.Bytes()} {
				for who, d := range map[string]*Decoder{"with key": dec, "without key": {Identities: dec.Identities}} {
					got, err := decodeWith(d, obj)
					if err != nil || !bytes.Equal(got, plain) {
						t.Errorf("%s/%v/%s %s: %v", comp, encrypt, how, who, err)
					}
				}
				if !bytes.Contains(obj[:200], []byte(`"mac":"hmac-sha256"`)) {
					t.Errorf("%s/%s: header does not name the trailer", comp, how)
				}
			}
		}
	}
}

// Every byte of an object is covered: one flipped anywhere, bytes cut or
// added, another key, or no trailer at all, and the object is refused.
func TestMACRefusesAlteredObjects(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	plain := walLike(t, 200<<10)
	for _, encrypt := range []bool{false, true} {
		for _, comp := range []string{"zstd", "none"} {
			enc := &Encoder{Compression: comp, MACKey: testKey}
			dec := &Decoder{MACKey: testKey}
			if encrypt {
				enc.Recipients = []age.Recipient{id.Recipient()}
				dec.Identities = []age.Identity{id}
			}
			obj := encodeWith(t, enc, plain)
			hlen := 12 + int(binary.LittleEndian.Uint32(obj[8:12]))
			cases := map[string][]byte{
				"other key":      encodeWith(t, &Encoder{Compression: comp, Recipients: enc.Recipients, MACKey: otherKey}, plain),
				"no trailer":     encodeWith(t, &Encoder{Compression: comp, Recipients: enc.Recipients}, plain),
				"trailer cut":    obj[:len(obj)-macSize],
				"trailer short":  obj[:len(obj)-1],
				"byte appended":  append(bytes.Clone(obj), 0),
				"bytes appended": append(bytes.Clone(obj), bytes.Repeat([]byte{7}, 100)...),
				"header only":    obj[:hlen],
				"trailer only":   append(bytes.Clone(obj[:hlen]), obj[len(obj)-macSize:]...),
			}
			// One flipped bit in every position of the header, and spread
			// over the payload and the trailer.
			positions := []int{}
			for i := 8; i < hlen; i++ {
				positions = append(positions, i)
			}
			for i := hlen; i < len(obj); i += max(1, (len(obj)-hlen)/50) {
				positions = append(positions, i)
			}
			for i := hlen; i < hlen+300; i += 7 { // age's header, or the stream's start
				positions = append(positions, i)
			}
			for i := len(obj) - macSize; i < len(obj); i++ {
				positions = append(positions, i)
			}
			for _, i := range positions {
				b := bytes.Clone(obj)
				b[i] ^= 0x01
				cases[fmt.Sprintf("flip at %d of %d", i, len(obj))] = b
			}
			for name, b := range cases {
				_, err := decodeWith(dec, b)
				if !errors.Is(err, ErrTampered) {
					t.Errorf("%s/%v %s: want ErrTampered, got %v", comp, encrypt, name, err)
				}
			}
			magic := bytes.Clone(obj)
			magic[0] ^= 0x01
			if _, err := decodeWith(dec, magic); !errors.Is(err, ErrCorrupt) {
				t.Errorf("flipped magic: want ErrCorrupt, got %v", err)
			}
		}
	}
}

// Without the key, a reader still checks the trailer's place: bytes added
// after it or a trailer cut short are damage.
func TestStrippedTrailerMustBeWhole(t *testing.T) {
	obj := encodeWith(t, &Encoder{MACKey: testKey}, walLike(t, 64<<10))
	for name, b := range map[string][]byte{
		"trailer short": obj[:len(obj)-1],
		"no trailer":    obj[:len(obj)-macSize],
	} {
		if _, err := decodeWith(&Decoder{}, b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: want ErrCorrupt, got %v", name, err)
		}
	}
}

// A moved object carries a valid trailer but not the name it is fetched as.
func TestMACRefusesMovedObjects(t *testing.T) {
	obj := encodeWith(t, &Encoder{MACKey: testKey}, walLike(t, 4096))
	_, err := (&Decoder{MACKey: testKey}).Decode(bytes.NewReader(obj), io.Discard, "000000010000000000000002")
	if !errors.Is(err, ErrTampered) {
		t.Errorf("want ErrTampered, got %v", err)
	}
}

// A transport failure while reading an authenticated object may be retried:
// it is not tampering.
func TestMACTransportErrorIsNotTampering(t *testing.T) {
	obj := encodeWith(t, &Encoder{MACKey: testKey}, walLike(t, 512<<10))
	_, err := (&Decoder{MACKey: testKey}).Decode(&failingReader{r: bytes.NewReader(obj), after: len(obj) / 2}, io.Discard, "")
	var se *SourceError
	if !errors.As(err, &se) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("want a SourceError, got %v", err)
	}
}

func TestShortMACKeyIsRefused(t *testing.T) {
	short := []byte("too short")
	if _, _, err := (&Encoder{MACKey: short}).EncodeFile(writeTemp(t, []byte("x")), "x"); err == nil || strings.Contains(err.Error(), "too short") {
		t.Errorf("encoder: %v", err)
	}
	if _, err := (&Decoder{MACKey: short}).Decode(bytes.NewReader(nil), io.Discard, ""); err == nil {
		t.Error("decoder accepted a short key")
	}
}

// Without a key the format is byte for byte what walship always wrote, and
// headers with fields this version does not know still read.
func TestFormatWithoutKeyIsUnchanged(t *testing.T) {
	var obj bytes.Buffer
	h := Header{Name: "x", Size: 3, Checksum: Checksum([]byte("abc"))}
	if err := (&Encoder{Compression: "none"}).Encode(&obj, h, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	js := `{"name":"x","size":3,"xxh3":"` + h.Checksum + `","compression":"none"}`
	want := append([]byte("WALSHIP\x01"), byte(len(js)), 0, 0, 0)
	want = append(append(want, js...), "abc"...)
	if !bytes.Equal(obj.Bytes(), want) {
		t.Fatalf("format changed:\n%q\n%q", obj.Bytes(), want)
	}
	future := `{"name":"x","size":3,"xxh3":"` + h.Checksum + `","compression":"none","written_by":"walship 9","extra":{"a":[1]}}`
	obj.Reset()
	obj.Write([]byte("WALSHIP\x01"))
	obj.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(future))))
	obj.WriteString(future + "abc")
	got, err := ReadHeader(bytes.NewReader(obj.Bytes()))
	if err != nil || got.Name != "x" || got.Size != 3 || got.Checksum != h.Checksum {
		t.Fatalf("unknown fields: %+v %v", got, err)
	}
	var out bytes.Buffer
	if _, err := (&Decoder{}).Decode(&obj, &out, "x"); err != nil || out.String() != "abc" {
		t.Fatalf("decode with unknown fields: %v", err)
	}
}

func TestSignRecord(t *testing.T) {
	rec := []byte(`{"system_identifier":"7301234567890123456","wal_segment_size":16777216}`)
	mac := SignRecord(testKey, rec)
	if !VerifyRecord(testKey, rec, mac) {
		t.Fatal("a signed record does not verify")
	}
	altered := bytes.Replace(rec, []byte("16777216"), []byte("67108864"), 1)
	for name, ok := range map[string]bool{
		"altered record": VerifyRecord(testKey, altered, mac),
		"other key":      VerifyRecord(otherKey, rec, mac),
		"altered mac":    VerifyRecord(testKey, rec, flipHex(mac)),
		"not hex":        VerifyRecord(testKey, rec, "zz"+mac[2:]),
		"empty mac":      VerifyRecord(testKey, rec, ""),
		"no key":         VerifyRecord(nil, rec, SignRecord(nil, rec)),
	} {
		if ok {
			t.Errorf("%s verified", name)
		}
	}
	// A record's signature is not an object trailer over the same bytes.
	m := newObjectMAC(testKey)
	m.Write(rec)
	if fmt.Sprintf("%x", m.Sum(nil)) == mac {
		t.Error("records and objects share a MAC domain")
	}
}

func TestDeriveKeyIsBoundToPurposeAndRepository(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := DeriveKey(secret, "objects", "repo-1")
	if len(a) != 32 || !bytes.Equal(a, DeriveKey(secret, "objects", "repo-1")) {
		t.Fatal("not a stable 32-byte key")
	}
	for _, other := range [][]byte{DeriveKey(secret, "records", "repo-1"), DeriveKey(secret, "objects", "repo-2"),
		DeriveKey(secret, "objects\x00repo-1", ""), DeriveKey(append(secret, 0), "objects", "repo-1")} {
		if bytes.Equal(a, other) {
			t.Error("two uses share a key")
		}
	}
}

// flipHex changes the last digit of a hex string.
func flipHex(s string) string {
	last := "1"
	if s[len(s)-1] == '1' {
		last = "2"
	}
	return s[:len(s)-1] + last
}
