package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

const (
	// certBackdate moves NotBefore into the past so that a peer whose clock is
	// up to this much behind ours still accepts a freshly made certificate.
	certBackdate = 5 * time.Minute
	// maxPeerCertValidity bounds NotAfter-NotBefore of a peer's certificate:
	// treaty certificates are short-lived (CertLifetime is at most 30 days), so
	// a longer one was not made by a treaty node and is refused.
	maxPeerCertValidity = maxCertLifetime + certBackdate + 24*time.Hour
)

// certSource holds this node's current self-signed certificate and makes a new
// one when less than a third of its lifetime remains. It is consulted on every
// handshake (GetCertificate / GetClientCertificate), so rotation needs no timer
// and no restart; connections made with an older certificate stay up.
type certSource struct {
	key      identity.PrivateKey
	lifetime time.Duration
	now      func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	issued    time.Time // the now() at which cert was made
	rotations uint64    // certificates made after the first
}

// get returns the certificate to present at now, regenerating it if needed.
func (s *certSource) get() (*tls.Certificate, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && !s.due(now) {
		return s.cert, nil
	}
	c, err := newCert(s.key, now, s.lifetime)
	if err != nil {
		return nil, err
	}
	if s.cert != nil {
		s.rotations++
	}
	s.cert, s.issued = c, now
	return c, nil
}

// due reports whether the current certificate must be replaced at now: less
// than a third of its life remains, or the clock went back before NotBefore.
func (s *certSource) due(now time.Time) bool {
	renewAt := s.issued.Add(s.lifetime - s.lifetime/3)
	return !now.Before(renewAt) || now.Before(s.cert.Leaf.NotBefore)
}

func (s *certSource) rotationCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotations
}

// newCert makes a self-signed certificate whose subject key is the identity
// key itself. Names in it are for humans; no one verifies them.
func newCert(key identity.PrivateKey, now time.Time, lifetime time.Duration) (*tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("transport: certificate serial: %w", err)
	}
	pub := key.Public()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: pub.String()},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub.Ed25519(), key.Signer())
	if err != nil {
		return nil, fmt.Errorf("transport: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("transport: parse own certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key.Signer(), Leaf: leaf}, nil
}

// admitFunc is the key check of one side: PeerSource admission on the server,
// the pinned key on the client. It returns nil or a *verifyError.
type admitFunc func(identity.PublicKey) *verifyError

// verifyRawPeerCert parses DER certificates as received in a handshake and
// runs verifyPeerCert. It is the fuzzing entry point for peer-supplied bytes.
func verifyRawPeerCert(raw [][]byte, now time.Time, admit admitFunc) (identity.PublicKey, error) {
	certs := make([]*x509.Certificate, 0, len(raw))
	if len(raw) == 1 { // more than one is refused below without parsing
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return identity.PublicKey{}, &verifyError{reason: ReasonBadCertificate, msg: "unparsable certificate: " + err.Error()}
		}
		certs = append(certs, c)
	} else {
		for range raw {
			certs = append(certs, nil)
		}
	}
	return verifyPeerCert(certs, now, admit)
}

// verifyPeerCert is the whole trust decision for a peer, in order:
//  1. exactly one certificate (no chains: there is no CA);
//  2. its key is ed25519 and not of small order (anyone can sign for such a
//     key), and its signature is pure ed25519, made by that same key over the
//     certificate (self-signed), with no unknown critical extension and a
//     validity period no longer than maxPeerCertValidity;
//  3. the key passes admit (admitted peer / pinned key);
//  4. now is within [NotBefore, NotAfter].
//
// crypto/tls separately checks that the peer holds the private key
// (CertificateVerify), so a key that passes here is proven once the handshake
// completes. The error is a *verifyError naming one Reason.
func verifyPeerCert(certs []*x509.Certificate, now time.Time, admit admitFunc) (identity.PublicKey, error) {
	var zero identity.PublicKey
	bad := func(peer identity.PublicKey, format string, args ...any) (identity.PublicKey, error) {
		return peer, &verifyError{reason: ReasonBadCertificate, peer: peer, msg: "" + fmt.Sprintf(format, args...)}
	}
	switch {
	case len(certs) == 0:
		return zero, &verifyError{reason: ReasonNoCertificate, msg: "peer presented no certificate"}
	case len(certs) > 1:
		return bad(zero, "peer presented %d certificates, want exactly 1", len(certs))
	case certs[0] == nil:
		return bad(zero, "nil certificate")
	}
	c := certs[0]
	edKey, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok || c.PublicKeyAlgorithm != x509.Ed25519 {
		return bad(zero, "certificate key is %v, want Ed25519", c.PublicKeyAlgorithm)
	}
	// identity refuses a key of small order (ErrSmallOrder): anyone can sign for it.
	key, err := identity.PublicKeyFromEd25519(edKey)
	if err != nil {
		return bad(zero, "certificate key: %v", err)
	}
	if c.SignatureAlgorithm != x509.PureEd25519 {
		return bad(key, "certificate signature algorithm is %v, want Ed25519", c.SignatureAlgorithm)
	}
	// CheckSignature with the certificate's own key: self-signed by the identity.
	// (CheckSignatureFrom would demand a CA certificate, which ours is not.)
	if err := c.CheckSignature(x509.PureEd25519, c.RawTBSCertificate, c.Signature); err != nil {
		return bad(key, "certificate is not self-signed by its key: %v", err)
	}
	if len(c.UnhandledCriticalExtensions) > 0 {
		return bad(key, "certificate has %d unknown critical extensions", len(c.UnhandledCriticalExtensions))
	}
	if !c.NotAfter.After(c.NotBefore) {
		return bad(key, "certificate NotAfter %v is not after NotBefore %v", c.NotAfter, c.NotBefore)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d > maxPeerCertValidity {
		return bad(key, "certificate validity %v exceeds %v", d, maxPeerCertValidity)
	}
	if ve := admit(key); ve != nil {
		ve.peer = key
		return key, ve
	}
	if now.Before(c.NotBefore) {
		return key, &verifyError{reason: ReasonCertNotYetValid, peer: key,
			msg: fmt.Sprintf("certificate not valid before %v (now %v)", c.NotBefore.UTC(), now.UTC())}
	}
	if now.After(c.NotAfter) {
		return key, &verifyError{reason: ReasonCertExpired, peer: key,
			msg: fmt.Sprintf("certificate expired at %v (now %v)", c.NotAfter.UTC(), now.UTC())}
	}
	return key, nil
}
