package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestClientCapsServerHandshakeBytes: a server may send a client no more
// than maxHandshakeBytes during the handshake, as a client may send a server.
// Otherwise a hostile address (a stale or gossiped one) makes every dial read
// and parse up to crypto/tls's own limits (a 256 KiB certificate message);
// here even a certificate of the pinned key, valid in every other respect,
// padded to 64 KiB with a non-critical extension, is refused.
func TestClientCapsServerHandshakeBytes(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	now := time.Now()
	tmpl := certTemplate(a.Public(), now.Add(-time.Minute), now.Add(time.Hour))
	tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 1}, Value: make([]byte, 64<<10)}}
	big := tls.Certificate{Certificate: [][]byte{mustDER(t, tmpl, a.Public().Ed25519(), a.Signer())}, PrivateKey: a.Signer()}
	// The same certificate without the padding is accepted: only the size is refused.
	tmpl.ExtraExtensions = nil
	small := tls.Certificate{Certificate: [][]byte{mustDER(t, tmpl, a.Public().Ed25519(), a.Signer())}, PrivateKey: a.Signer()}
	marker := func(c *tls.Conn) { // accept, then wait (bounded) for the client to hang up
		_, _ = c.Write([]byte{acceptMarker})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1))
	}
	serve := func(cert tls.Certificate) string {
		return rawServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert,
			NextProtos: []string{testProto, ProtoFederation}, MinVersion: tls.VersionTLS13}, marker)
	}
	cli := newNode(t, b, admit(), Config{})

	c, err := cli.Dial(t.Context(), serve(small), a.Public(), testProto)
	if err != nil {
		t.Fatalf("a server with an ordinary certificate: %v", err)
	}
	c.Close()

	bigAddr := serve(big)
	c, err = cli.Dial(t.Context(), bigAddr, a.Public(), testProto)
	if err == nil {
		c.Close()
		t.Fatal("a server sending a 64 KiB certificate was accepted")
	}
	he := handshakeErr(t, err)
	if he.Reason != ReasonProtocol || !errors.Is(err, errServerHandshakeTooLarge) {
		t.Fatalf("a server sending a 64 KiB certificate: %v (reason %v), want %v", err, he.Reason, errServerHandshakeTooLarge)
	}
	rt := cli.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return bigAddr, nil })
	if _, err := get(t, rt, PeerURL(a.Public(), "/x")); err == nil || !strings.Contains(err.Error(), errServerHandshakeTooLarge.Error()) {
		t.Fatalf("RoundTripper to the same server: %v, want %v", err, errServerHandshakeTooLarge)
	}
}
