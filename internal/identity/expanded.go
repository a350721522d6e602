package identity

import voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

// ExpandedKey is a PublicKey prepared for many verifications: its curve point
// is decoded and its multiples precomputed once (about 8 µs), which saves
// about an eighth of every later Verify (BenchmarkVerifyExpandedRatio). It
// holds about 1.5 KiB, so whoever keeps one per peer must bound how many it
// keeps. An ExpandedKey is immutable and safe for
// concurrent use; the zero value and nil refuse every signature.
type ExpandedKey struct {
	pub PublicKey
	// exp is nil when pub does not decode to a curve point; PublicKey.Verify
	// refuses every signature for such a key too.
	exp *voi.ExpandedPublicKey
}

// Expand prepares p for repeated verification.
func (p PublicKey) Expand() *ExpandedKey {
	k := &ExpandedKey{pub: p}
	if !p.IsZero() {
		if exp, err := voi.NewExpandedPublicKey(voi.PublicKey(p.k[:])); err == nil {
			k.exp = exp
		}
	}
	return k
}

// PublicKey returns the key k was expanded from.
func (k *ExpandedKey) PublicKey() PublicKey {
	if k == nil {
		return PublicKey{}
	}
	return k.pub
}

// Verify reports whether sig is k's signature of msg, with exactly
// PublicKey.Verify's verdict (the same stdlib rules, ADR 20).
func (k *ExpandedKey) Verify(msg, sig []byte) bool {
	if k == nil || k.exp == nil || len(sig) != voi.SignatureSize {
		return false
	}
	return voi.VerifyExpandedWithOptions(k.exp, msg, sig, stdlibRules)
}
