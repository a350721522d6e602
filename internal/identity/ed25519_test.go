package identity

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The identity key signs and verifies with curve25519-voi (ADR 20). These
// tests hold it to crypto/ed25519's behaviour, byte for byte: the same
// signatures, and the same verdict on every signature, including the
// encodings implementations are known to disagree on.

func TestSignMatchesStdlib(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		seed := make([]byte, ed25519.SeedSize)
		fill(r, seed)
		msg := make([]byte, r.IntN(2048))
		fill(r, msg)
		k, err := FromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		got, want := k.Sign(msg), ed25519.Sign(ed25519.NewKeyFromSeed(seed), msg)
		if string(got) != string(want) {
			t.Fatalf("case %d: signature differs from crypto/ed25519:\n got %x\nwant %x", i, got, want)
		}
		if !k.Public().Verify(msg, got) {
			t.Fatalf("case %d: own signature refused", i)
		}
	}
}

// order is the prime order L of the ed25519 base point.
var order, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// smallOrder are encodings of points of order 1, 2, 4 and 8, canonical and
// not (y >= p, or a sign bit on x = 0): the cases "Taming the many EdDSAs"
// (Chalkias et al., 2020) shows implementations disagree on.
var smallOrder = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4, sign bit set
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	"0100000000000000000000000000000000000000000000000000000000000080", // identity, sign bit: non-canonical
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p+1: non-canonical identity
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p: non-canonical 0
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // order 2, sign bit set
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
}

// sameVerdict fails t unless identity's Verify, on the key and on its
// expansion, and crypto/ed25519's agree.
func sameVerdict(t *testing.T, what string, pub, msg, sig []byte) (accepted bool) {
	t.Helper()
	want := ed25519.Verify(pub, msg, sig)
	p, err := PublicKeyFromEd25519(pub)
	if errors.Is(err, ErrSmallOrder) {
		// No constructor makes this key (TestSmallOrderKeyIsRefused); Verify
		// still agrees with crypto/ed25519 on it.
		copy(p.k[:], pub)
	} else if err != nil { // the all-zero key, refused before any curve arithmetic
		return false
	}
	if got := p.Verify(msg, sig); got != want {
		t.Fatalf("%s: Verify = %v, crypto/ed25519 = %v\npub %x\nmsg %x\nsig %x", what, got, want, pub, msg, sig)
	}
	if got := p.Expand().Verify(msg, sig); got != want {
		t.Fatalf("%s: ExpandedKey.Verify = %v, crypto/ed25519 = %v\npub %x\nmsg %x\nsig %x", what, got, want, pub, msg, sig)
	}
	return want
}

func TestVerifyMatchesStdlib(t *testing.T) {
	t.Parallel()
	k := seeded(t, 7)
	pub := k.Public().Bytes()
	msg := []byte("POST /v1/call/echo treaty-call")
	sig := k.Sign(msg)
	if !sameVerdict(t, "valid", pub, msg, sig) {
		t.Fatal("a valid signature was refused")
	}

	t.Run("every bit flipped", func(t *testing.T) {
		for bit := range 8 * len(sig) {
			bad := append([]byte(nil), sig...)
			bad[bit/8] ^= 1 << (bit % 8)
			if sameVerdict(t, "flipped signature", pub, msg, bad) {
				t.Fatalf("bit %d: a corrupted signature was accepted", bit)
			}
		}
		for bit := range 8 * len(pub) {
			bad := append([]byte(nil), pub...)
			bad[bit/8] ^= 1 << (bit % 8)
			sameVerdict(t, "flipped key", bad, msg, sig)
		}
		if sameVerdict(t, "other message", pub, []byte("POST /v1/call/echo treaty-calm"), sig) {
			t.Fatal("a signature verified for another message")
		}
	})

	t.Run("non-canonical S", func(t *testing.T) {
		// S + L is the same scalar mod L; RFC 8032 and crypto/ed25519 refuse it
		// (signature malleability).
		s := new(big.Int).SetBytes(reverse(sig[32:]))
		for _, add := range []*big.Int{order, new(big.Int).Lsh(order, 1), new(big.Int).Lsh(order, 3)} {
			bad := append([]byte(nil), sig[:32]...)
			bad = append(bad, reverse(leftPad(new(big.Int).Add(s, add).Bytes(), 32))...)
			if len(bad) != 64 {
				continue // S + kL no longer fits in 32 bytes
			}
			if sameVerdict(t, "S+kL", pub, msg, bad) {
				t.Fatal("a malleated signature (S + kL) was accepted")
			}
		}
	})

	t.Run("small-order and non-canonical points", func(t *testing.T) {
		zeroS := make([]byte, 32)
		for _, a := range smallOrder {
			A := mustHex(t, a)
			for _, r := range smallOrder {
				R := mustHex(t, r)
				// S = 0: accepted exactly when R + [k]A is the identity, which
				// depends on the implementation's rules for A and R.
				sameVerdict(t, "small-order A, R, S=0", A, msg, append(append([]byte(nil), R...), zeroS...))
			}
			// A real signature checked against a small-order key.
			sameVerdict(t, "small-order A", A, msg, sig)
			// A small-order R in an otherwise real signature.
			sameVerdict(t, "small-order R", pub, msg, append(mustHex(t, a), sig[32:]...))
		}
	})
}

func FuzzVerifyMatchesStdlib(f *testing.F) {
	k := ed25519.NewKeyFromSeed(make([]byte, 32))
	msg := []byte("treaty")
	f.Add(make([]byte, 32), msg, ed25519.Sign(k, msg), []byte{}, []byte{})
	f.Add([]byte{1}, []byte{}, make([]byte, 64), []byte{0: 1}, []byte{63: 0x10})
	f.Add(mustHex(f, smallOrder[4]), msg, make([]byte, 64), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, seedOrKey, msg, sig, xorKey, xorSig []byte) {
		// Two ways in: a raw key and signature, or a real key's real signature
		// of msg with bytes flipped, to reach past the first checks.
		var pub []byte
		if len(seedOrKey) == 32 && len(sig) != 64 {
			priv := ed25519.NewKeyFromSeed(seedOrKey)
			pub, sig = priv.Public().(ed25519.PublicKey), ed25519.Sign(priv, msg)
		} else {
			pub = leftPad(seedOrKey, 32)
			if len(pub) != 32 || len(sig) != 64 {
				return
			}
		}
		pub, sig = xor(pub, xorKey), xor(sig, xorSig)
		sameVerdict(t, "fuzz", pub, msg, sig)
	})
}

func BenchmarkVerify(b *testing.B) {
	k := seeded(b, 7)
	msg := make([]byte, 400)
	sig := k.Sign(msg)
	pub := k.Public()
	b.Run("identity", func(b *testing.B) {
		for b.Loop() {
			if !pub.Verify(msg, sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("identity-expanded", func(b *testing.B) {
		ek := pub.Expand()
		for b.Loop() {
			if !ek.Verify(msg, sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("expand", func(b *testing.B) {
		for b.Loop() {
			pub.Expand()
		}
	})
	b.Run("crypto-ed25519", func(b *testing.B) {
		raw := pub.Ed25519()
		for b.Loop() {
			if !ed25519.Verify(raw, msg, sig) {
				b.Fatal("refused")
			}
		}
	})
}

func BenchmarkSign(b *testing.B) {
	k := seeded(b, 7)
	msg := make([]byte, 400)
	b.Run("identity", func(b *testing.B) {
		for b.Loop() {
			k.Sign(msg)
		}
	})
	b.Run("crypto-ed25519", func(b *testing.B) {
		raw := ed25519.NewKeyFromSeed(make([]byte, 32))
		for b.Loop() {
			ed25519.Sign(raw, msg)
		}
	})
}

func fill(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

// leftPad returns b with leading zeros up to n bytes (big-endian), or b
// itself when it is longer.
func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

func xor(b, mask []byte) []byte {
	out := append([]byte(nil), b...)
	for i := range min(len(out), len(mask)) {
		out[i] ^= mask[i]
	}
	return out
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
