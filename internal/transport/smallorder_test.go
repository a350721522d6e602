package transport

import (
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// universalSigner "holds" the identity point: R = identity, S = 0 verifies
// under that key for every message, so anyone can sign as it.
type universalSigner struct{}

func (universalSigner) Public() crypto.PublicKey { return identityPoint() }
func (universalSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	sig := make([]byte, 64)
	sig[0] = 1
	return sig, nil
}

func identityPoint() ed25519.PublicKey {
	k := make([]byte, 32)
	k[0] = 1
	return k
}

// TestSmallOrderKeyIsRefused: a key of small order is no identity (one
// signature verifies for every message, so anyone completes a handshake as
// it); its certificate is refused whatever the PeerSource says. Without the
// check the identity point's certificate, signed by anyone, was accepted.
func TestSmallOrderKeyIsRefused(t *testing.T) {
	t.Parallel()
	if !ed25519.Verify(identityPoint(), []byte("any message"), must(universalSigner{}.Sign(nil, nil, nil))) {
		t.Fatal("premise: the universal signature does not verify")
	}
	k, err := identity.PublicKeyFromEd25519(identityPoint())
	if err != nil {
		t.Fatal(err)
	}
	der := mustDER(t, certTemplate(k, t0.Add(-time.Minute), t0.Add(time.Hour)), identityPoint(), universalSigner{})
	_, err = verifyRawPeerCert([][]byte{der}, t0, acceptAll)
	var ve *verifyError
	if !errors.As(err, &ve) || ve.reason != ReasonBadCertificate {
		t.Fatalf("identity-point certificate: %v, want a bad certificate", err)
	}

	// The encodings of the small-order points (and non-canonical variants).
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1
	} {
		b, _ := hex.DecodeString(h)
		if !smallOrder(b) {
			t.Errorf("%s not found of small order", h)
		}
	}
	for i := range 64 {
		if pub := testKey(t, byte(i)).Public().Ed25519(); smallOrder(pub) {
			t.Errorf("generated key %x found of small order", pub)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
