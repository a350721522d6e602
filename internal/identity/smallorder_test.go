package identity

import (
	"crypto/ed25519"
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
)

// curveSmallOrder is the reference: k decodes (as crypto/ed25519 decodes it,
// y >= p included) to a point P with [8]P the identity.
func curveSmallOrder(k []byte) bool {
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(k); err != nil {
		return false
	}
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(&c); err != nil {
		return false
	}
	return p.IsSmallOrder()
}

// smallOrderEncodings are every encoding of a point of small order: the
// eight torsion points with either sign bit, and every y >= p (y+p for y <
// 19, either sign bit) that the curve finds of small order.
func smallOrderEncodings(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range curve.EIGHT_TORSION {
		enc := compress(p)
		neg := append([]byte(nil), enc...)
		neg[31] ^= 0x80
		out = append(out, enc, neg)
	}
	for _, enc := range nonCanonicalY() {
		if curveSmallOrder(enc) {
			out = append(out, enc)
		}
	}
	if len(out) != 16+4 { // y = p (0) and y = p+1 (1), each with either sign
		t.Fatalf("%d small-order encodings, want 20", len(out))
	}
	return out
}

// nonCanonicalY are the 38 encodings with y >= p.
func nonCanonicalY() [][]byte {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	var out [][]byte
	for y := range int64(19) {
		for _, sign := range []byte{0, 0x80} {
			enc := reverse(leftPad(new(big.Int).Add(p, big.NewInt(y)).Bytes(), 32))
			enc[31] |= sign
			out = append(out, enc)
		}
	}
	return out
}

// TestSmallOrderKeyIsRefused: no constructor makes a PublicKey of a point of
// small order, in any encoding, and each says why. Without the check, every
// one of these keys was accepted, and anyone could sign as it.
func TestSmallOrderKeyIsRefused(t *testing.T) {
	t.Parallel()
	encs := smallOrderEncodings(t)
	for _, h := range smallOrder { // the hand-written list agrees
		encs = append(encs, mustHex(t, h))
	}
	for _, enc := range encs {
		allZero := string(enc) == string(make([]byte, 32))
		if _, err := PublicKeyFromEd25519(enc); err == nil || (!allZero && !errors.Is(err, ErrSmallOrder)) {
			t.Errorf("PublicKeyFromEd25519(%x) = %v, want ErrSmallOrder", enc, err)
		}
		var k [32]byte
		copy(k[:], enc)
		did := encodeDID(k)
		_, err := ParseDID(did)
		var pe *ParseError
		if !errors.As(err, &pe) || (!allZero && !errors.Is(err, ErrSmallOrder)) {
			t.Errorf("ParseDID(%s) (%x) = %v, want a *ParseError wrapping ErrSmallOrder", did, enc, err)
		}
		var p PublicKey
		if err := p.UnmarshalText([]byte(did)); err == nil || !p.IsZero() {
			t.Errorf("UnmarshalText(%s) = %v, key %v", did, err, p)
		}
	}
}

// TestIsSmallOrderMatchesCurve holds the table to the curve arithmetic on
// every non-canonical encoding, the neighbours of each table entry, the
// extremes of y and random encodings: the table neither misses a point nor
// refuses a key it should not.
func TestIsSmallOrderMatchesCurve(t *testing.T) {
	t.Parallel()
	check := func(enc []byte) {
		t.Helper()
		var k [32]byte
		copy(k[:], enc)
		if got, want := isSmallOrder(k), curveSmallOrder(enc); got != want {
			t.Fatalf("isSmallOrder(%x) = %v, curve says %v", enc, got, want)
		}
	}
	for _, enc := range nonCanonicalY() {
		check(enc)
	}
	for _, y := range smallOrderY {
		if !curveSmallOrder(y[:]) {
			t.Fatalf("table entry %x is not of small order", y)
		}
		for bit := range 256 {
			flipped := y
			flipped[bit/8] ^= 1 << (bit % 8)
			check(flipped[:])
		}
	}
	for i := range 256 { // y = i and y = p-1-i, either sign
		lo := make([]byte, 32)
		lo[0] = byte(i)
		hi := reverse(leftPad(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(int64(20+i))).Bytes(), 32))
		for _, enc := range [][]byte{lo, hi} {
			check(enc)
			neg := append([]byte(nil), enc...)
			neg[31] ^= 0x80
			check(neg)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		enc := make([]byte, 32)
		fill(r, enc)
		check(enc)
	}
	for i := range 64 { // real keys are never refused
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i)
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		if _, err := PublicKeyFromEd25519(pub); err != nil {
			t.Fatalf("generated key %x refused: %v", pub, err)
		}
		check(pub)
	}
}
