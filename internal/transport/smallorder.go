package transport

import (
	"crypto/ecdh"
	"math/big"
	"slices"
)

// smallOrder reports whether the ed25519 public key k (32 bytes) is a point
// of small order, the identity included. For such a key one signature
// verifies for every message (crypto/ed25519 does not refuse them), so
// proving possession of it proves nothing: it is no identity.
//
// The check maps k to its Montgomery u-coordinate, (1+y)/(1-y), and
// multiplies by a clamped X25519 scalar, a multiple of the cofactor 8: that
// gives zero, which crypto/ecdh refuses, exactly for the small-order points.
func smallOrder(k []byte) bool {
	if len(k) != 32 {
		return false
	}
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	be := slices.Clone(k)
	be[31] &= 0x7f // the sign of x; the order does not depend on it
	slices.Reverse(be)
	y := new(big.Int).SetBytes(be)
	y.Mod(y, p) // crypto/ed25519 accepts non-canonical y
	one := big.NewInt(1)
	if y.Cmp(one) == 0 {
		return true // the identity
	}
	den := new(big.Int).Sub(one, y)
	den.Mod(den, p).ModInverse(den, p)
	u := new(big.Int).Add(one, y)
	u.Mul(u, den).Mod(u, p)
	ub := u.FillBytes(make([]byte, 32))
	slices.Reverse(ub)
	pub, err := ecdh.X25519().NewPublicKey(ub)
	if err != nil {
		return false
	}
	scalar := make([]byte, 32)
	scalar[0] = 9 // any: X25519 clamps it
	priv, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		return false
	}
	_, err = priv.ECDH(pub)
	return err != nil // only a zero result is an error
}
