package wire

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/dunglas/httpsfv"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Vectors from RFC 9421 (HTTP Message Signatures) and RFC 9530 (Digest
// Fields), copied from the RFC text with RFC 8792 line wrapping undone.

// RFC 9421 Appendix B.1.4, test-key-ed25519 (PKCS#8 and SPKI, base64 of DER).
const (
	rfcEd25519Private = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"
	rfcEd25519Public  = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="
	// RFC 9421 Appendix B.1.3, test-key-ecc-p256 (SPKI).
	rfcP256Public = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lfw0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ=="
)

// RFC 9421 Appendix B.2 test-request and its content digest.
const (
	rfcRequestBody   = `{"hello": "world"}`
	rfcRequestSHA512 = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)

func rfcTestRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest("POST", "http://example.com/foo?param=Value&Pet=dog", strings.NewReader(rfcRequestBody))
	if err != nil {
		t.Fatal(err)
	}
	r.Host = "example.com"
	r.Header.Set("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Digest", rfcRequestSHA512)
	r.Header.Set("Content-Length", "18")
	return r
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRFC9421_B26_Ed25519 reconstructs the exact signature base of Appendix
// B.2.6, verifies the RFC's signature over it, and signs it again with the
// test key: ed25519 is deterministic, so the bytes must be identical.
func TestRFC9421_B26_Ed25519(t *testing.T) {
	const (
		sigInput = `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
		sigValue = `sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`
		wantBase = `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	)
	priv, err := x509.ParsePKCS8PrivateKey(mustB64(t, rfcEd25519Private))
	if err != nil {
		t.Fatal(err)
	}
	pubAny, err := x509.ParsePKIXPublicKey(mustB64(t, rfcEd25519Public))
	if err != nil {
		t.Fatal(err)
	}
	edPriv := priv.(ed25519.PrivateKey)
	key, err := identity.FromSeed(edPriv.Seed())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := identity.PublicKeyFromEd25519(pubAny.(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().Equal(pub) {
		t.Fatal("B.1.4 private key does not match B.1.4 public key")
	}

	in, err := parseSignatureInputValue(sigInput, "sig-b26")
	if err != nil {
		t.Fatal(err)
	}
	if !in.hasCreated || in.created != 1618884473 || in.keyid != "test-key-ed25519" {
		t.Fatalf("parsed params = %+v", in)
	}
	base, err := signatureBase(requestMessage(rfcTestRequest(t)), in.comps, in.params)
	if err != nil {
		t.Fatal(err)
	}
	if base != wantBase {
		t.Fatalf("signature base differs from RFC 9421 B.2.6\n got: %q\nwant: %q", base, wantBase)
	}
	sig, err := parseSignatureValue(sigValue, "sig-b26")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Verify([]byte(base), sig) {
		t.Fatal("RFC 9421 B.2.6 signature does not verify over the reconstructed base")
	}
	if got := signatureHeader("sig-b26", key.Sign([]byte(base))); got != sigValue {
		t.Fatalf("re-signing B.2.6 gave\n %s\nwant\n %s", got, sigValue)
	}
	// Tampering with any covered component breaks it.
	r := rfcTestRequest(t)
	r.Header.Set("Content-Length", "19")
	tampered, err := signatureBase(requestMessage(r), in.comps, in.params)
	if err != nil {
		t.Fatal(err)
	}
	if pub.Verify([]byte(tampered), sig) {
		t.Fatal("signature verified over a tampered base")
	}
}

func verifyP256(t *testing.T, base string, sig []byte) bool {
	t.Helper()
	k, err := x509.ParsePKIXPublicKey(mustB64(t, rfcP256Public))
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != 64 {
		t.Fatalf("ecdsa signature is %d bytes", len(sig))
	}
	h := sha256.Sum256([]byte(base))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(k.(*ecdsa.PublicKey), h[:], r, s)
}

// TestRFC9421_B24_Response checks a response base (@status and fields)
// against Appendix B.2.4 and its published ECDSA signature.
func TestRFC9421_B24_Response(t *testing.T) {
	const (
		sigInput = `sig-b24=("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`
		sigValue = `sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:`
		digest   = "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"
		wantBase = `"@status": 200
"content-type": application/json
"content-digest": ` + digest + `
"content-length": 23
"@signature-params": ("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`
	)
	h := http.Header{}
	h.Set("Date", "Tue, 20 Apr 2021 02:07:56 GMT")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Digest", digest)
	h.Set("Content-Length", "23")
	in, err := parseSignatureInputValue(sigInput, "sig-b24")
	if err != nil {
		t.Fatal(err)
	}
	base, err := signatureBase(&message{response: true, status: 200, header: h}, in.comps, in.params)
	if err != nil {
		t.Fatal(err)
	}
	if base != wantBase {
		t.Fatalf("base differs from RFC 9421 B.2.4\n got: %q\nwant: %q", base, wantBase)
	}
	sig, err := parseSignatureValue(sigValue, "sig-b24")
	if err != nil {
		t.Fatal(err)
	}
	if !verifyP256(t, base, sig) {
		t.Fatal("RFC 9421 B.2.4 signature does not verify")
	}
	cd, err := ParseContentDigest(digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := cd.Check([]byte(`{"message": "good dog"}`)); err != nil {
		t.Fatalf("B.2 test-response digest: %v", err)
	}
}

// TestRFC9421_S24_RequestBoundResponse checks ";req" components, the
// mechanism treaty uses to bind a response to its request, against the
// RFC 9421 §2.4 example and its published signature.
func TestRFC9421_S24_RequestBoundResponse(t *testing.T) {
	const (
		sigInput = `reqres=("@status" "content-digest" "content-type" "@authority";req "@method";req "@path";req "content-digest";req);created=1618884479;keyid="test-key-ecc-p256"`
		sigValue = `reqres=:dMT/A/76ehrdBTD/2Xx8QuKV6FoyzEP/I9hdzKN8LQJLNgzU4W767HK05rx1i8meNQQgQPgQp8wq2ive3tV5Ag==:`
		digest   = "sha-512=:0Y6iCBzGg5rZtoXS95Ijz03mslf6KAMCloESHObfwnHJDbkkWWQz6PhhU9kxsTbARtY2PTBOzq24uJFpHsMuAg==:"
		wantBase = `"@status": 503
"content-digest": ` + digest + `
"content-type": application/json
"@authority";req: example.com
"@method";req: POST
"@path";req: /foo
"content-digest";req: ` + rfcRequestSHA512 + `
"@signature-params": ("@status" "content-digest" "content-type" "@authority";req "@method";req "@path";req "content-digest";req);created=1618884479;keyid="test-key-ecc-p256"`
	)
	h := http.Header{}
	h.Set("Date", "Tue, 20 Apr 2021 02:07:56 GMT")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", "62")
	h.Set("Content-Digest", digest)
	in, err := parseSignatureInputValue(sigInput, "reqres")
	if err != nil {
		t.Fatal(err)
	}
	m := &message{response: true, status: 503, header: h, req: requestMessage(rfcTestRequest(t))}
	base, err := signatureBase(m, in.comps, in.params)
	if err != nil {
		t.Fatal(err)
	}
	if base != wantBase {
		t.Fatalf("base differs from RFC 9421 §2.4\n got: %q\nwant: %q", base, wantBase)
	}
	sig, err := parseSignatureValue(sigValue, "reqres")
	if err != nil {
		t.Fatal(err)
	}
	if !verifyP256(t, base, sig) {
		t.Fatal("RFC 9421 §2.4 signature does not verify")
	}
	cd, err := ParseContentDigest(digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := cd.Check([]byte(`{"busy": true, "message": "Your call is very important to us"}`)); err != nil {
		t.Fatalf("§2.4 response digest: %v", err)
	}
	// The same response bound to a different request must not verify.
	other := rfcTestRequest(t)
	other.Header.Set("Content-Digest", ContentDigestHeader([]byte(`{"hello": "mallory"}`)))
	m.req = requestMessage(other)
	base2, err := signatureBase(m, in.comps, in.params)
	if err != nil {
		t.Fatal(err)
	}
	if verifyP256(t, base2, sig) {
		t.Fatal("response verified against another request")
	}
}

// TestRFC9421_ComponentValues checks field joining (§2.1), dictionary
// members with ;key (§2.1.2) and @query (§2.2.7).
func TestRFC9421_ComponentValues(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://www.example.com/path?param=value&foo=bar&baz=batman", nil)
	r.Header.Add("Example-Header", "value, with, lots")
	r.Header.Add("Example-Header", "of, commas")
	r.Header.Set("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c), d")
	m := requestMessage(r)
	tests := []struct {
		name string
		item httpsfv.Item
		want string
	}{
		{"joined lines", componentItem("example-header", false, ""), "value, with, lots, of, commas"},
		{"key a", componentItem("example-dict", false, "a"), "1"},
		{"key d", componentItem("example-dict", false, "d"), "?1"},
		{"key b", componentItem("example-dict", false, "b"), "2;x=1;y=2"},
		{"key c", componentItem("example-dict", false, "c"), "(a b c)"},
		{"query", componentItem("@query", false, ""), "?param=value&foo=bar&baz=batman"},
		{"path", componentItem("@path", false, ""), "/path"},
		{"authority", componentItem("@authority", false, ""), "www.example.com"},
		{"target-uri", componentItem("@target-uri", false, ""), "https://www.example.com/path?param=value&foo=bar&baz=batman"},
		{"scheme", componentItem("@scheme", false, ""), "https"},
		{"request-target", componentItem("@request-target", false, ""), "/path?param=value&foo=bar&baz=batman"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseComponent(tc.item)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.value(c)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("value = %q, want %q", got, tc.want)
			}
		})
	}
	// No query at all is "?" (RFC 9421 §2.2.7).
	r2, _ := http.NewRequest("GET", "https://www.example.com/path", nil)
	c, _ := parseComponent(componentItem("@query", false, ""))
	if got, _ := requestMessage(r2).value(c); got != "?" {
		t.Fatalf("empty @query = %q, want %q", got, "?")
	}
}

// TestRFC9530_ContentDigest checks the digests of RFC 9530's example
// content {"hello": "world"} and the serialization treaty sends.
func TestRFC9530_ContentDigest(t *testing.T) {
	body := []byte(rfcRequestBody)
	const want256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
	if got := ContentDigestHeader(body); got != want256 {
		t.Fatalf("ContentDigestHeader = %s, want %s", got, want256)
	}
	for _, v := range []string{want256, rfcRequestSHA512, want256 + ", " + rfcRequestSHA512, "md5=:AAAA:, " + want256} {
		cd, err := ParseContentDigest(v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if err := cd.Check(body); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
	s512 := sha512.Sum512(body)
	if "sha-512=:"+base64.StdEncoding.EncodeToString(s512[:])+":" != rfcRequestSHA512 {
		t.Fatal("sha-512 of the RFC body differs from RFC 9421 B.2")
	}
}

// TestContentDigestMismatch: every supported digest present must match, so
// an honest sha-256 cannot be paired with a forged sha-512, or vice versa.
func TestContentDigestMismatch(t *testing.T) {
	body := []byte(rfcRequestBody)
	other := []byte(`{"hello": "mallory"}`)
	s512 := sha512.Sum512(other)
	forged512 := "sha-512=:" + base64.StdEncoding.EncodeToString(s512[:]) + ":"
	tests := []struct {
		name, header string
	}{
		{"sha-256 of another body", ContentDigestHeader(other)},
		{"sha-512 of another body", forged512},
		{"honest sha-256, forged sha-512", ContentDigestHeader(body) + ", " + forged512},
		{"forged sha-256, honest sha-512", ContentDigestHeader(other) + ", " + rfcRequestSHA512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cd, err := ParseContentDigest(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			wantReason(t, cd.Check(body), ReasonDigestMismatch)
		})
	}
}
