package wire

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Unix(1_750_000_000, 0)

func testKey(t testing.TB, n byte) identity.PrivateKey {
	t.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keys: alice calls, bob serves, mallory attacks.
type keys struct{ alice, bob, mallory identity.PrivateKey }

func testKeys(t testing.TB) keys {
	return keys{alice: testKey(t, 1), bob: testKey(t, 2), mallory: testKey(t, 3)}
}

// seededRand is the deterministic nonce source of one test.
func seededRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func newVerifier(t testing.TB, self identity.PublicKey) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{Self: self})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const testURL = "https://bob.example:7443/v1/call/code.review?trace=1"

var testBody = []byte(`{"diff":"--- a\n+++ b\n","lang":"go"}`)

// signedRequest returns a client request from alice to bob, signed at now.
func signedRequest(t testing.TB, k keys, body []byte, mod func(*SignParams)) (*http.Request, Sent) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, testURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	p := SignParams{Key: k.alice, Audience: k.bob.Public(), Capability: "code.review", Now: t0, Rand: seededRand(1)}
	if mod != nil {
		mod(&p)
	}
	sent, err := SignRequest(r, body, p)
	if err != nil {
		t.Fatal(err)
	}
	return r, sent
}

// serverView returns the request as an HTTP server would hand it to a
// handler: RequestURI from the wire, Host from :authority, TLS set.
func serverView(t testing.TB, c *http.Request) *http.Request {
	t.Helper()
	s := httptest.NewRequest(c.Method, c.URL.RequestURI(), nil)
	s.Host = c.Host
	if s.Host == "" {
		s.Host = c.URL.Host
	}
	s.Header = c.Header.Clone()
	s.TLS = &tls.ConnectionState{}
	return s
}

// resign replaces the Signature-Input of r with sigInput and signs it
// validly with key, so that a test isolates one check from the signature.
func resign(t testing.TB, r *http.Request, key identity.PrivateKey, sigInput string) {
	t.Helper()
	in, err := parseSignatureInputValue(sigInput, Label)
	if err != nil {
		t.Fatalf("resign: %v", err)
	}
	base, err := signatureBase(requestMessage(r), in.comps, in.params)
	if err != nil {
		t.Fatalf("resign: %v", err)
	}
	r.Header.Set(HeaderSignatureInput, sigInput)
	r.Header.Set(HeaderSignature, signatureHeader(Label, key.Sign([]byte(base))))
}

func wantReason(t testing.TB, err error, want Reason) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	got, ok := ReasonOf(err)
	if !ok {
		t.Fatalf("error = %v, want *Error with reason %v", err, want)
	}
	if got != want {
		t.Fatalf("reason = %v (%v), want %v", got, err, want)
	}
}

func replaceOnce(t testing.TB, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q does not contain %q", s, old)
	}
	return strings.Replace(s, old, new, 1)
}
