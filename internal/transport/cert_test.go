package transport

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// certTemplate is what newCert makes, for tests that vary one field.
func certTemplate(pub identity.PublicKey, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: pub.String()},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
}

// mustDER signs tmpl's certificate for subject key pub with signer.
func mustDER(tb testing.TB, tmpl *x509.Certificate, pub any, signer any) []byte {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// ecdsaCert is a self-signed P-256 certificate: valid X.509, wrong key type.
func ecdsaCert(tb testing.TB) tls.Certificate {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := certTemplate(identity.PublicKey{}, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	der := mustDER(tb, tmpl, &k.PublicKey, k)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func acceptAll(identity.PublicKey) *verifyError { return nil }

func TestVerifyPeerCert(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	nb, na := t0.Add(-5*time.Minute), t0.Add(time.Hour)
	good := mustDER(t, certTemplate(a.Public(), nb, na), a.Public().Ed25519(), a.Signer())

	critical := certTemplate(a.Public(), nb, na)
	critical.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4, 5}, Critical: true, Value: []byte{5, 0}}}
	tooLong := certTemplate(a.Public(), nb, nb.Add(maxPeerCertValidity+time.Hour))
	inverted := certTemplate(a.Public(), na, nb)
	ec := ecdsaCert(t)

	tests := []struct {
		name   string
		raw    [][]byte
		now    time.Time
		admit  admitFunc
		reason Reason // 0: accepted
	}{
		{"valid", [][]byte{good}, t0, acceptAll, 0},
		{"valid at NotBefore", [][]byte{good}, nb, acceptAll, 0},
		{"valid at NotAfter", [][]byte{good}, na, acceptAll, 0},
		{"no certificate", nil, t0, acceptAll, ReasonNoCertificate},
		{"two certificates", [][]byte{good, good}, t0, acceptAll, ReasonBadCertificate},
		{"garbage", [][]byte{[]byte("not a certificate")}, t0, acceptAll, ReasonBadCertificate},
		{"truncated", [][]byte{good[:len(good)-1]}, t0, acceptAll, ReasonBadCertificate},
		{"ECDSA key", [][]byte{ec.Certificate[0]}, t0, acceptAll, ReasonBadCertificate},
		{"key a signed by b (not self-signed)", [][]byte{
			mustDER(t, certTemplate(a.Public(), nb, na), a.Public().Ed25519(), b.Signer())}, t0, acceptAll, ReasonBadCertificate},
		{"all-zero ed25519 key", [][]byte{
			mustDER(t, certTemplate(a.Public(), nb, na), ed25519.PublicKey(make([]byte, 32)), b.Signer())}, t0, acceptAll, ReasonBadCertificate},
		{"unknown critical extension", [][]byte{mustDER(t, critical, a.Public().Ed25519(), a.Signer())}, t0, acceptAll, ReasonBadCertificate},
		{"validity too long", [][]byte{mustDER(t, tooLong, a.Public().Ed25519(), a.Signer())}, t0, acceptAll, ReasonBadCertificate},
		{"NotAfter before NotBefore", [][]byte{mustDER(t, inverted, a.Public().Ed25519(), a.Signer())}, t0, acceptAll, ReasonBadCertificate},
		{"expired", [][]byte{good}, na.Add(time.Second), acceptAll, ReasonCertExpired},
		{"not yet valid", [][]byte{good}, nb.Add(-time.Second), acceptAll, ReasonCertNotYetValid},
		{"admit refuses", [][]byte{good}, t0, func(identity.PublicKey) *verifyError {
			return &verifyError{reason: ReasonUnknownKey, msg: "no"}
		}, ReasonUnknownKey},
		{"key check precedes validity", [][]byte{good}, na.Add(time.Hour), func(identity.PublicKey) *verifyError {
			return &verifyError{reason: ReasonWrongKey, msg: "no"}
		}, ReasonWrongKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, err := verifyRawPeerCert(tc.raw, tc.now, tc.admit)
			if tc.reason == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if key != a.Public() {
					t.Fatalf("key %v, want %v", key, a.Public())
				}
				return
			}
			var ve *verifyError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v is not a *verifyError", err)
			}
			if ve.reason != tc.reason {
				t.Fatalf("reason %v (%v), want %v", ve.reason, err, tc.reason)
			}
		})
	}
}

// TestNewCertIsAccepted: what we make is what we accept, and it is short-lived.
func TestNewCertIsAccepted(t *testing.T) {
	t.Parallel()
	k := testKey(t, 4)
	c, err := newCert(k, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := verifyRawPeerCert(c.Certificate, t0, acceptAll)
	if err != nil || got != k.Public() {
		t.Fatalf("own certificate refused: %v %v", got, err)
	}
	if c.Leaf.NotAfter.Sub(c.Leaf.NotBefore) != time.Hour+certBackdate {
		t.Fatalf("validity %v..%v", c.Leaf.NotBefore, c.Leaf.NotAfter)
	}
	if _, err := verifyRawPeerCert(c.Certificate, t0.Add(time.Hour+time.Second), acceptAll); err == nil {
		t.Fatal("own certificate accepted after NotAfter")
	}
}

func TestCertSourceRotation(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	s := &certSource{key: testKey(t, 1), lifetime: 90 * time.Minute, now: clk.Now}
	first, err := s.get()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at      time.Duration
		rotated bool
	}{
		{59 * time.Minute, false},        // 31m of 90m left: more than a third
		{60 * time.Minute, true},         // exactly a third left
		{61 * time.Minute, false},        // fresh since 60m
		{10 * time.Hour, true},           // long expired
		{10*time.Hour - time.Hour, true}, // clock went back before NotBefore
	}
	prev := first
	for _, st := range steps {
		clk.Set(t0.Add(st.at))
		c, err := s.get()
		if err != nil {
			t.Fatal(err)
		}
		if rotated := c != prev; rotated != st.rotated {
			t.Fatalf("at +%v: rotated=%v, want %v", st.at, rotated, st.rotated)
		}
		if _, err := verifyRawPeerCert(c.Certificate, clk.Now(), acceptAll); err != nil {
			t.Fatalf("at +%v: current certificate invalid: %v", st.at, err)
		}
		prev = c
	}
	if n := s.rotationCount(); n != 3 {
		t.Fatalf("rotations %d, want 3", n)
	}
}

func TestReasonString(t *testing.T) {
	t.Parallel()
	for r := ReasonUnknownKey; r <= ReasonNotAdmitted; r++ {
		if s := r.String(); s == "" || strings.HasPrefix(s, "Reason(") {
			t.Errorf("Reason %d has no name", int(r))
		}
	}
	for _, r := range []Reason{0, -1, ReasonNotAdmitted + 1, 1 << 30} {
		if s := r.String(); s != fmt.Sprintf("Reason(%d)", int(r)) {
			t.Errorf("Reason(%d).String() = %q", int(r), s)
		}
	}
}

func TestHandshakeErrorWraps(t *testing.T) {
	t.Parallel()
	inner := errors.New("boom")
	k := testKey(t, 1).Public()
	var err error = fmt.Errorf("call: %w", &HandshakeError{Side: sideClient, Peer: k, Addr: "127.0.0.1:1", Reason: ReasonWrongKey, Err: inner})
	var he *HandshakeError
	if !errors.As(err, &he) || !errors.Is(err, inner) {
		t.Fatal("HandshakeError does not unwrap")
	}
	msg := err.Error()
	for _, want := range []string{"client", k.String(), "127.0.0.1:1", "wrong key", "boom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if s := (&HandshakeError{Side: sideServer, Reason: Reason(99)}).Error(); !strings.Contains(s, "unknown peer") || !strings.Contains(s, "Reason(99)") {
		t.Errorf("zero-peer message %q", s)
	}
}

// FuzzVerifyPeerCert feeds arbitrary DER to the certificate check. It must
// never panic, and whatever it accepts must really be a self-signed ed25519
// certificate for the returned key, valid at now.
func FuzzVerifyPeerCert(f *testing.F) {
	a := testKey(f, 1)
	nb, na := t0.Add(-5*time.Minute), t0.Add(time.Hour)
	good := mustDER(f, certTemplate(a.Public(), nb, na), a.Public().Ed25519(), a.Signer())
	f.Add(good, t0.Unix())                                                                                       // valid
	f.Add(good, na.Unix()+1)                                                                                     // expired
	f.Add(good, nb.Unix()-1)                                                                                     // not yet valid
	f.Add(good[:len(good)/2], t0.Unix())                                                                         // truncated
	f.Add([]byte{}, t0.Unix())                                                                                   // empty
	f.Add([]byte{0x30, 0x82, 0xff, 0xff}, t0.Unix())                                                             // huge length prefix
	f.Add(ecdsaCert(f).Certificate[0], time.Now().Unix())                                                        // wrong key type
	f.Add(mustDER(f, certTemplate(a.Public(), nb, na), a.Public().Ed25519(), testKey(f, 2).Signer()), t0.Unix()) // signed by another key
	f.Fuzz(func(t *testing.T, der []byte, unix int64) {
		now := time.Unix(unix, 0)
		key, err := verifyRawPeerCert([][]byte{der}, now, acceptAll)
		if err != nil {
			var ve *verifyError
			if !errors.As(err, &ve) || ve.reason < ReasonUnknownKey || ve.reason > ReasonOverload {
				t.Fatalf("error %v is not a *verifyError with a known reason", err)
			}
			return
		}
		c, perr := x509.ParseCertificate(der)
		if perr != nil {
			t.Fatalf("accepted unparsable DER: %v", perr)
		}
		pk, ok := c.PublicKey.(ed25519.PublicKey)
		if !ok || !key.Equal(mustKey(t, pk)) {
			t.Fatal("returned key is not the certificate's ed25519 key")
		}
		if !ed25519.Verify(pk, c.RawTBSCertificate, c.Signature) {
			t.Fatal("accepted a certificate not self-signed by its key")
		}
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			t.Fatal("accepted a certificate outside its validity")
		}
	})
}

func mustKey(t *testing.T, pk ed25519.PublicKey) identity.PublicKey {
	k, err := identity.PublicKeyFromEd25519(pk)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
