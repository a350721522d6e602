// Package identity holds a node's ed25519 identity and the did:key names of peers.
//
// A peer is its key: PublicKey is the only identity treaty trusts, and its text
// form is a did:key (multicodec ed25519-pub, base58btc). No constructor makes
// a PublicKey of a key of small order (ErrSmallOrder). PrivateKey cannot be
// compared with ==; fmt and slog print it as "[redacted]", and parse errors
// never echo key bytes.
package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// didPrefix precedes the multibase (base58btc, 'z') encoding of the key.
const didPrefix = "did:key:z"

// multicodecEd25519Pub is the varint-encoded multicodec code 0xed (ed25519-pub).
var multicodecEd25519Pub = [2]byte{0xed, 0x01}

// PublicKey is a peer's ed25519 public key. The zero value is not a valid key
// (see IsZero). PublicKey is comparable and safe to use as a map key.
type PublicKey struct {
	k [ed25519.PublicKeySize]byte
	// did is the did:key text, computed once by every constructor: the call
	// path names peers by it many times per call. It is a pure function of k,
	// so == and map keys still compare keys.
	did string
}

// withDID fills the cached did:key text.
func (p PublicKey) withDID() PublicKey {
	if !p.IsZero() {
		p.did = encodeDID(p.k)
	}
	return p
}

// PublicKeyFromEd25519 wraps a raw ed25519 public key. A key of small order
// is refused with ErrSmallOrder.
func PublicKeyFromEd25519(pub ed25519.PublicKey) (PublicKey, error) {
	var p PublicKey
	if len(pub) != ed25519.PublicKeySize {
		return p, fmt.Errorf("identity: ed25519 public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	copy(p.k[:], pub)
	if p.IsZero() {
		return PublicKey{}, errors.New("identity: all-zero public key")
	}
	if isSmallOrder(p.k) {
		return PublicKey{}, ErrSmallOrder
	}
	return p.withDID(), nil
}

// IsZero reports whether p is the zero value.
func (p PublicKey) IsZero() bool { return p.k == [ed25519.PublicKeySize]byte{} }

// Ed25519 returns a copy of the raw key for crypto/ed25519.
func (p PublicKey) Ed25519() ed25519.PublicKey {
	return ed25519.PublicKey(append([]byte(nil), p.k[:]...))
}

// Bytes returns a copy of the 32 key bytes.
func (p PublicKey) Bytes() []byte { return append([]byte(nil), p.k[:]...) }

// Array returns the raw 32-byte key as a value: unlike Bytes it allocates
// nothing, for the call path's per-call encodings of a peer's key.
func (p PublicKey) Array() [ed25519.PublicKeySize]byte { return p.k }

// Equal reports whether p and q are the same key, in constant time.
func (p PublicKey) Equal(q PublicKey) bool {
	return subtle.ConstantTimeCompare(p.k[:], q.k[:]) == 1
}

// Verify reports whether sig is p's signature of msg. It accepts exactly
// what crypto/ed25519.Verify accepts for any key a PublicKey can hold (ADR
// 20; FuzzVerifyMatchesStdlib), in less than half its time.
func (p PublicKey) Verify(msg, sig []byte) bool {
	if p.IsZero() || len(sig) != ed25519.SignatureSize {
		return false
	}
	return voi.VerifyWithOptions(p.k[:], msg, sig, stdlibRules)
}

// stdlibRules are crypto/ed25519's verification rules: cofactorless, S
// canonical, R compared by its encoding, A decoded leniently. A copy of
// voi.VerifyOptionsStdLib, which is exported and so could be changed by
// any package in the binary.
var stdlibRules = &voi.Options{Verify: &voi.VerifyOptions{
	AllowSmallOrderA:   true,
	AllowSmallOrderR:   true,
	AllowNonCanonicalA: true,
	CofactorlessVerify: true,
}}

// String returns the did:key form, e.g. "did:key:z6Mk...".
func (p PublicKey) String() string {
	if p.did != "" {
		return p.did
	}
	if p.IsZero() {
		return "did:key:<zero>"
	}
	return encodeDID(p.k)
}

func encodeDID(k [ed25519.PublicKeySize]byte) string {
	buf := make([]byte, 0, 34)
	buf = append(buf, multicodecEd25519Pub[:]...)
	buf = append(buf, k[:]...)
	return didPrefix + base58Encode(buf)
}

// Short returns a short fingerprint for logs and tables: the first characters
// after the common "z6Mk" prefix. It is for display, never for lookup.
func (p PublicKey) Short() string {
	s := strings.TrimPrefix(p.String(), didPrefix+"6Mk")
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

// LogValue makes slog print the did:key.
func (p PublicKey) LogValue() slog.Value { return slog.StringValue(p.String()) }

// MarshalText implements encoding.TextMarshaler with the did:key form.
func (p PublicKey) MarshalText() ([]byte, error) {
	if p.IsZero() {
		return nil, errors.New("identity: cannot marshal zero public key")
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseDID.
func (p *PublicKey) UnmarshalText(b []byte) error {
	k, err := ParseDID(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// ParseError says why a did:key was rejected. It quotes at most a short prefix
// of the input. It unwraps to ErrSmallOrder for a key of small order.
type ParseError struct {
	Input  string // truncated to 24 bytes
	Reason string
	err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("identity: invalid did:key %q: %s", e.Input, e.Reason)
}

func (e *ParseError) Unwrap() error { return e.err }

// maxDIDLen bounds the input ParseDID will look at: a did:key for ed25519 is 56 bytes.
const maxDIDLen = 128

// ParseDID parses "did:key:z6Mk..." (ed25519 only). A key of small order is
// refused with a *ParseError that unwraps to ErrSmallOrder.
func ParseDID(s string) (PublicKey, error) {
	var p PublicKey
	failErr := func(reason string, err error) (PublicKey, error) {
		in := s
		if len(in) > 24 {
			in = in[:24] + "..."
		}
		return PublicKey{}, &ParseError{Input: in, Reason: reason, err: err}
	}
	fail := func(reason string) (PublicKey, error) { return failErr(reason, nil) }
	if len(s) > maxDIDLen {
		return fail(fmt.Sprintf("longer than %d bytes", maxDIDLen))
	}
	if !strings.HasPrefix(s, "did:key:") {
		return fail(`missing "did:key:" prefix`)
	}
	if !strings.HasPrefix(s, didPrefix) {
		return fail(`multibase must be base58btc ("z")`)
	}
	raw, err := base58Decode(s[len(didPrefix):])
	if err != nil {
		return fail(err.Error())
	}
	if len(raw) < 2 || raw[0] != multicodecEd25519Pub[0] || raw[1] != multicodecEd25519Pub[1] {
		return fail("multicodec is not ed25519-pub (0xed)")
	}
	if len(raw) != 2+ed25519.PublicKeySize {
		return fail(fmt.Sprintf("key is %d bytes, want %d", len(raw)-2, ed25519.PublicKeySize))
	}
	copy(p.k[:], raw[2:])
	if p.IsZero() {
		return fail("all-zero key")
	}
	if isSmallOrder(p.k) {
		return failErr("key is of small order: anyone can sign for it", ErrSmallOrder)
	}
	// Canonical form only: reject encodings that decode to the same key (leading '1's).
	p = p.withDID()
	if p.did != s {
		return fail("non-canonical encoding")
	}
	return p, nil
}

// PrivateKey is a node's ed25519 signing key. It is not comparable, and fmt
// (every verb, %#v included) and slog print it as "[redacted]".
type PrivateKey struct {
	// k returns the key bytes; nil for the zero value. It is a function, which
	// also makes PrivateKey incomparable, because fmt prints a function as its
	// address whatever the verb and depth: a struct that holds a PrivateKey in
	// an unexported field, which fmt cannot ask to Format itself, still does
	// not show the key.
	k   func() ed25519.PrivateKey
	pub PublicKey // Public(), derived once: signing asks for it on every call
}

// newPrivateKey wraps raw key bytes.
func newPrivateKey(k ed25519.PrivateKey) PrivateKey {
	var p PublicKey
	copy(p.k[:], k[ed25519.SeedSize:])
	return PrivateKey{k: func() ed25519.PrivateKey { return k }, pub: p.withDID()}
}

// raw returns the key bytes, nil for the zero value. Callers must not modify them.
func (k PrivateKey) raw() ed25519.PrivateKey {
	if k.k == nil {
		return nil
	}
	return k.k()
}

// redacted is how a private key prints.
const redacted = "[redacted]"

// Format implements fmt.Formatter: every verb prints "[redacted]" (%#v the
// GoString form), so neither %v nor %x nor %q shows key bytes.
func (k PrivateKey) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, redacted)
}

// GoString implements fmt.GoStringer without the key bytes.
func (PrivateKey) GoString() string { return "identity.PrivateKey{" + redacted + "}" }

// Generate makes a new key from r (crypto/rand.Reader when r is nil).
func Generate(r io.Reader) (PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("identity: generate key: %w", err)
	}
	return newPrivateKey(priv), nil
}

// FromSeed derives a key from a 32-byte seed; tests use it for determinism.
func FromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return PrivateKey{}, fmt.Errorf("identity: seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return newPrivateKey(ed25519.NewKeyFromSeed(seed)), nil
}

// IsZero reports whether k holds no key.
func (k PrivateKey) IsZero() bool { return len(k.raw()) == 0 }

// Public returns the matching public key.
func (k PrivateKey) Public() PublicKey { return k.pub }

// Sign signs msg with pure ed25519 (RFC 8032). Signatures are deterministic
// and byte for byte those of crypto/ed25519.Sign (ADR 20).
func (k PrivateKey) Sign(msg []byte) []byte { return voi.Sign(voi.PrivateKey(k.raw()), msg) }

// Signer returns a crypto.Signer for crypto/tls and x509. The caller must not
// leak it into logs.
func (k PrivateKey) Signer() crypto.Signer { return k.raw() }

// DeriveKey derives a 32-byte secret for one purpose from the identity key
// (HKDF-SHA256 over the seed, with label as info), so that a node needs no
// second secret file. Different labels give independent keys.
func (k PrivateKey) DeriveKey(label string) ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("identity: cannot derive from zero private key")
	}
	return hkdf.Key(sha256.New, k.raw().Seed(), nil, "treaty/"+label, 32)
}

// LogValue keeps the key out of logs.
func (PrivateKey) LogValue() slog.Value { return slog.StringValue(redacted) }
