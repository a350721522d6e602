package identity

import (
	"crypto/ed25519"
	"crypto/sha512"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
	"golang.org/x/sys/cpu"
)

// Signatures made with a real secret key but a torsion component in A or R
// are where cofactorless (crypto/ed25519) and cofactored verification part:
// with A' = aB + T and S = r + H(R,A',m)a, [S]B - [k]A' = R - [k]T, so
// crypto/ed25519 accepts exactly when [k]T is the identity, and a cofactored
// verifier always. The S = 0 cases of TestVerifyMatchesStdlib never exercise
// scalar multiplication of a large-order point with a torsion component;
// these do, on whichever backend (AVX2 or generic) the machine runs.

// mixedSigner signs with the secret scalar of a stdlib key while hashing and
// encoding whatever A and R it is given.
type mixedSigner struct {
	a   scalar.Scalar
	pub []byte
	rng *rand.Rand
}

func newMixedSigner(t *testing.T, seed []byte, rng *rand.Rand) *mixedSigner {
	t.Helper()
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	s := &mixedSigner{rng: rng, pub: ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)}
	if _, err := s.a.SetBytesModOrder(h[:32]); err != nil {
		t.Fatal(err)
	}
	var A curve.EdwardsPoint
	if got := compress(A.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &s.a)); string(got) != string(s.pub) {
		t.Fatalf("aB = %x, crypto/ed25519 public key %x", got, s.pub)
	}
	return s
}

// sign returns R' || S with R' = rB + tR and S = r + H(R', pubEnc, msg)a.
func (s *mixedSigner) sign(t *testing.T, pubEnc, msg []byte, tR *curve.EdwardsPoint) []byte {
	t.Helper()
	var wide [64]byte
	fill(s.rng, wide[:])
	var r scalar.Scalar
	if _, err := r.SetBytesModOrderWide(wide[:]); err != nil {
		t.Fatal(err)
	}
	var R curve.EdwardsPoint
	R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &r)
	R.Add(&R, tR)
	rEnc := compress(&R)

	hram := sha512.New()
	hram.Write(rEnc)
	hram.Write(pubEnc)
	hram.Write(msg)
	var k, S scalar.Scalar
	if _, err := k.SetBytesModOrderWide(hram.Sum(nil)); err != nil {
		t.Fatal(err)
	}
	S.Mul(&k, &s.a)
	S.Add(&S, &r)
	sig := append([]byte(nil), rEnc...)
	sig = append(sig, make([]byte, 32)...)
	if err := S.ToBytes(sig[32:]); err != nil {
		t.Fatal(err)
	}
	return sig
}

func compress(p *curve.EdwardsPoint) []byte {
	var c curve.CompressedEdwardsY
	c.SetEdwardsPoint(p)
	return append([]byte(nil), c[:]...)
}

func decompress(t *testing.T, enc []byte) *curve.EdwardsPoint {
	t.Helper()
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(enc); err != nil {
		t.Fatal(err)
	}
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(&c); err != nil {
		t.Fatalf("%x: %v", enc, err)
	}
	return &p
}

func TestVerifyMatchesStdlibMixedOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var identity curve.EdwardsPoint
	identity.Identity()
	// smallOrder[:8] are the canonical encodings of the eight torsion points.
	torsion := smallOrder[:8]

	t.Run("mixed-order A", func(t *testing.T) {
		var accepted, refused int
		for key := range 4 {
			seed := make([]byte, ed25519.SeedSize)
			fill(rng, seed)
			s := newMixedSigner(t, seed, rng)
			A := decompress(t, s.pub)
			for _, enc := range torsion {
				var mixed curve.EdwardsPoint
				mixed.Add(A, decompress(t, mustHex(t, enc)))
				pub := compress(&mixed)
				for i := range 16 {
					msg := []byte{byte(key), byte(i)}
					if sameVerdict(t, "mixed-order A "+enc, pub, msg, s.sign(t, pub, msg, &identity)) {
						accepted++
					} else if enc == torsion[0] {
						t.Fatalf("key %d message %d: a plain signature was refused", key, i)
					} else {
						refused++
					}
				}
			}
		}
		// About 1/ord(T) of the signatures under A + T verify without the
		// cofactor; both counts must be non-zero for the cases to be live.
		if refused == 0 || accepted <= 4*16 {
			t.Fatalf("accepted %d, refused %d: the torsion cases did not exercise both verdicts", accepted, refused)
		}
	})

	t.Run("mixed-order R", func(t *testing.T) {
		seed := make([]byte, ed25519.SeedSize)
		fill(rng, seed)
		s := newMixedSigner(t, seed, rng)
		for _, enc := range torsion[1:] {
			for i := range 8 {
				msg := []byte{byte(i)}
				// Valid under cofactored verification only: crypto/ed25519
				// refuses, and so must identity.
				if sameVerdict(t, "mixed-order R "+enc, s.pub, msg, s.sign(t, s.pub, msg, decompress(t, mustHex(t, enc)))) {
					t.Fatalf("torsion %s: a signature with a mixed-order R was accepted", enc)
				}
			}
		}
	})
}

// withoutAVX2Env marks the child process of TestMatchesStdlibWithoutAVX2.
const withoutAVX2Env = "TREATY_IDENTITY_NO_AVX2_CHILD"

// TestMatchesStdlibWithoutAVX2 runs the differential tests again with AVX2
// hidden from golang.org/x/sys/cpu, which is what curve25519-voi reads to
// choose its backend: CI and the machines nodes run on need not match.
func TestMatchesStdlibWithoutAVX2(t *testing.T) {
	if os.Getenv(withoutAVX2Env) != "" {
		if cpu.X86.HasAVX2 {
			t.Fatal("GODEBUG=cpu.avx2=off did not hide AVX2")
		}
		return
	}
	if runtime.GOARCH != "amd64" || !cpu.X86.HasAVX2 {
		t.Skip("the generic backend is the only one here; the other tests cover it")
	}
	if testing.Short() {
		t.Skip("re-runs the package's differential tests")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^(TestMatchesStdlibWithoutAVX2|TestSignMatchesStdlib|TestVerifyMatchesStdlib|TestVerifyMatchesStdlibMixedOrder|FuzzVerifyMatchesStdlib)$", "-test.count=1")
	godebug := "cpu.avx2=off"
	if v := os.Getenv("GODEBUG"); v != "" {
		godebug = v + "," + godebug
	}
	cmd.Env = append(os.Environ(), withoutAVX2Env+"=1", "GODEBUG="+godebug)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("without AVX2: %v\n%s", err, out)
	}
}
