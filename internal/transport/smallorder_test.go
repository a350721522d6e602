package transport

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
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
// it); its certificate is refused whatever the PeerSource says. The refusal
// is identity's (ErrSmallOrder), the one place that decides it. Without the
// check the identity point's certificate, signed by anyone, was accepted.
func TestSmallOrderKeyIsRefused(t *testing.T) {
	t.Parallel()
	if !ed25519.Verify(identityPoint(), []byte("any message"), must(universalSigner{}.Sign(nil, nil, nil))) {
		t.Fatal("premise: the universal signature does not verify")
	}
	tmpl := certTemplate(testKey(t, 1).Public(), t0.Add(-time.Minute), t0.Add(time.Hour))
	der := mustDER(t, tmpl, identityPoint(), universalSigner{})
	_, err := verifyRawPeerCert([][]byte{der}, t0, acceptAll)
	var ve *verifyError
	if !errors.As(err, &ve) || ve.reason != ReasonBadCertificate || !strings.Contains(err.Error(), "small order") {
		t.Fatalf("identity-point certificate: %v, want a bad certificate of small order", err)
	}

	// Every small-order point, canonical and not, is refused before its
	// certificate's signature is looked at.
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000080",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1
	} {
		b, _ := hex.DecodeString(h)
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		c.PublicKey = ed25519.PublicKey(b)
		_, err = verifyPeerCert([]*x509.Certificate{c}, t0, acceptAll)
		if !errors.As(err, &ve) || ve.reason != ReasonBadCertificate || !strings.Contains(err.Error(), "small order") {
			t.Errorf("key %s: %v, want a bad certificate of small order", h, err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
