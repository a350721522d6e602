package identity

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func seeded(t testing.TB, b byte) PrivateKey {
	t.Helper()
	k, err := FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The W3C did:key test vector for ed25519 (did-method-key spec, "ed25519-x25519.json"):
// public key 2e6fcce36701dc791488e0d0b1745cc1e33a4c1c9fcc41c63bd343dbbe0970e6.
const vectorDID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"

func TestDIDVector(t *testing.T) {
	t.Parallel()
	raw := []byte{0x2e, 0x6f, 0xcc, 0xe3, 0x67, 0x01, 0xdc, 0x79, 0x14, 0x88, 0xe0, 0xd0, 0xb1, 0x74, 0x5c, 0xc1,
		0xe3, 0x3a, 0x4c, 0x1c, 0x9f, 0xcc, 0x41, 0xc6, 0x3b, 0xd3, 0x43, 0xdb, 0xbe, 0x09, 0x70, 0xe6}
	p, err := PublicKeyFromEd25519(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != vectorDID {
		t.Fatalf("String = %s, want %s", p, vectorDID)
	}
	q, err := ParseDID(vectorDID)
	if err != nil || q != p {
		t.Fatalf("ParseDID = %v, %v", q, err)
	}
}

func TestRoundTripAndSign(t *testing.T) {
	t.Parallel()
	k := seeded(t, 1)
	p := k.Public()
	q, err := ParseDID(p.String())
	if err != nil || !q.Equal(p) {
		t.Fatalf("round trip: %v %v", q, err)
	}
	if !strings.HasPrefix(p.String(), "did:key:z6Mk") {
		t.Fatalf("did:key %s lacks the ed25519 prefix", p)
	}
	sig := k.Sign([]byte("msg"))
	if !p.Verify([]byte("msg"), sig) || p.Verify([]byte("msg2"), sig) || seeded(t, 2).Public().Verify([]byte("msg"), sig) {
		t.Fatal("Verify accepted a wrong message or key")
	}
	if len(p.Short()) != 8 {
		t.Fatalf("Short = %q", p.Short())
	}
}

func TestParseDIDRejects(t *testing.T) {
	t.Parallel()
	good := seeded(t, 3).Public().String()
	cases := map[string]string{
		"empty":             "",
		"no prefix":         strings.TrimPrefix(good, "did:key:"),
		"other method":      strings.Replace(good, "did:key:", "did:web:", 1),
		"base64 multibase":  "did:key:m" + good[9:],
		"bad alphabet (0)":  good[:20] + "0" + good[21:],
		"truncated":         good[:len(good)-2],
		"extra char":        good + "a",
		"leading one":       "did:key:z1" + good[9:],
		"secp256k1 codec":   "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
		"unicode lookalike": strings.Replace(good, "z", "ｚ", 1),
		"trailing space":    good + " ",
		"too long":          "did:key:z" + strings.Repeat("a", 200),
		"all zero key":      "did:key:z6MkeTG3bFFSLYVU7VqhgZxqr6YzpaGrQtFMh1uvqGy1vDnP",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseDID(in)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseDID(%q) = %v, want *ParseError", in, err)
			}
		})
	}
}

func TestPrivateKeyNeverPrints(t *testing.T) {
	t.Parallel()
	k := seeded(t, 4)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", k)
	if !strings.Contains(buf.String(), "[redacted]") {
		t.Fatalf("slog printed %q", buf.String())
	}
	file, _ := MarshalKeyFile(k)
	enc := strings.Fields(string(file))[1]
	if s := fmt.Sprintf("%v %+v", k.LogValue(), k.LogValue()); strings.Contains(s, enc) {
		t.Fatal("key bytes in formatted output")
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.key")
	k := seeded(t, 5)
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, k); err == nil {
		t.Fatal("WriteKeyFile overwrote an existing key")
	}
	got, err := LoadKeyFile(path)
	if err != nil || got.Public() != k.Public() {
		t.Fatalf("LoadKeyFile = %v, %v", got.Public(), err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		os.Chmod(path, mode)
		if _, err := LoadKeyFile(path); !errors.Is(err, ErrKeyFileMode) {
			t.Fatalf("mode %#o: err = %v, want ErrKeyFileMode", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	bad := map[string]string{
		"wrong tag":  "OTHER-KEY " + strings.Repeat("A", 44),
		"bad base64": keyFileTag + " !!!!",
		"short seed": keyFileTag + " AAAA",
		"public key": seeded(t, 6).Public().String(),
	}
	for name, body := range bad {
		_, err := ParseKeyFile([]byte(body))
		if err == nil {
			t.Fatalf("%s: ParseKeyFile accepted %q", name, body)
		}
		if strings.Contains(err.Error(), "AAAA") {
			t.Fatalf("%s: error echoes key material: %v", name, err)
		}
	}
}

func FuzzParseDID(f *testing.F) {
	f.Add(vectorDID)                                                   // valid W3C vector
	f.Add("did:key:z6Mk")                                              // prefix only
	f.Add("did:key:z111111111111111111111111111111111")                // leading zeros
	f.Add("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme") // secp256k1
	f.Add("did:key:m7QEJ")                                             // other multibase
	f.Add(encodeDID([32]byte{1}))                                      // the identity point: small order
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseDID(s)
		if err != nil {
			return
		}
		if p.String() != s { // only canonical encodings may parse
			t.Fatalf("ParseDID(%q) accepted a non-canonical form of %s", s, p)
		}
		if isSmallOrder(p.k) {
			t.Fatalf("ParseDID(%q) accepted a key of small order", s)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	b, _ := MarshalKeyFile(seeded(f, 7))
	f.Add(b)                             // valid
	f.Add([]byte(keyFileTag + " "))      // empty body
	f.Add([]byte(keyFileTag + "\tAAAA")) // tab separator
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := ParseKeyFile(in)
		if err != nil {
			return
		}
		out, _ := MarshalKeyFile(k)
		if k2, err := ParseKeyFile(out); err != nil || k2.Public() != k.Public() {
			t.Fatalf("re-parse failed: %v", err)
		}
	})
}

func TestDeriveKey(t *testing.T) {
	t.Parallel()
	a1, _ := seeded(t, 1).DeriveKey("pseudonym")
	a2, _ := seeded(t, 1).DeriveKey("pseudonym")
	b, _ := seeded(t, 1).DeriveKey("other")
	c, _ := seeded(t, 2).DeriveKey("pseudonym")
	if len(a1) != 32 || !bytes.Equal(a1, a2) || bytes.Equal(a1, b) || bytes.Equal(a1, c) {
		t.Fatal("DeriveKey is not deterministic per key and label")
	}
}

func TestBase58RoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		b := make([]byte, i%40+1)
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		if i%3 == 0 && len(b) > 2 {
			b[0], b[1] = 0, 0 // leading zeros become leading '1's
		}
		d, err := base58Decode(base58Encode(b))
		if err != nil || !bytes.Equal(d, b) {
			t.Fatalf("round trip of %x: %x, %v", b, d, err)
		}
	}
	// A known value: the multicodec prefix alone.
	if got := base58Encode([]byte{0xed, 0x01}); got != "K36" {
		t.Fatalf("base58(ed01) = %s", got)
	}
}
