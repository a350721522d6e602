package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestNotAdmittedIsTold: a server that refuses the client's certificate (a
// `peer add` of the client it has not applied yet) is told apart from a
// server that is down, closes, or refuses for another reason: only the first
// is ReasonNotAdmitted (NotAdmitted), on Dial and on the RoundTripper alike.
func TestNotAdmittedIsTold(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	aCert, err := newCert(a, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	refuseCert := &tls.Config{Certificates: []tls.Certificate{*aCert}, ClientAuth: tls.RequireAnyClientCert,
		NextProtos: []string{ProtoFederation, testProto}, MinVersion: tls.VersionTLS13,
		VerifyConnection: func(tls.ConnectionState) error { return errors.New("not admitted") }}
	otherALPN := &tls.Config{Certificates: []tls.Certificate{*aCert}, ClientAuth: tls.RequestClientCert,
		NextProtos: []string{"other/1"}, MinVersion: tls.VersionTLS13}
	plain := &tls.Config{Certificates: []tls.Certificate{*aCert}, ClientAuth: tls.RequestClientCert,
		NextProtos: []string{ProtoFederation, testProto}, MinVersion: tls.VersionTLS13}

	treaty := newNode(t, a, admit(), Config{}) // a treaty node that has not added b
	serveEcho(t, treaty, testProto)
	serveHTTP(t, treaty, http.HandlerFunc(whoami))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there now

	tests := []struct {
		name        string
		addr        string
		notAdmitted bool
		reason      Reason // 0: not a handshake refusal
	}{
		{"treaty server that does not admit us", treaty.addr(), true, ReasonNotAdmitted},
		{"server refusing our certificate", rawServer(t, refuseCert, func(*tls.Conn) {}), true, ReasonNotAdmitted},
		{"server without our protocol", rawServer(t, otherALPN, func(*tls.Conn) {}), false, ReasonRefusedByPeer},
		{"server closing before accepting", rawServer(t, plain, func(*tls.Conn) {}), false, ReasonRefusedByPeer},
		{"nothing listening", down, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cli := newNode(t, b, admit(), Config{HandshakeTimeout: 2 * time.Second})
			_, dialErr := cli.Dial(t.Context(), tc.addr, a.Public(), testProto)
			rt := cli.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return tc.addr, nil })
			_, rtErr := get(t, rt, PeerURL(a.Public(), "/x"))
			for _, err := range []error{dialErr, rtErr} {
				if err == nil {
					t.Fatal("succeeded")
				}
				if got := NotAdmitted(err); got != tc.notAdmitted {
					t.Fatalf("NotAdmitted(%v) = %v, want %v", err, got, tc.notAdmitted)
				}
				var he *HandshakeError
				switch {
				case tc.reason == 0 && !errors.Is(err, ErrUnreachable):
					t.Fatalf("%v, want ErrUnreachable", err)
				case tc.reason != 0 && (!errors.As(err, &he) || he.Reason != tc.reason):
					t.Fatalf("%v, want a handshake refusal with reason %v", err, tc.reason)
				}
			}
		})
	}
	if NotAdmitted(nil) || NotAdmitted(errors.New("x")) ||
		NotAdmitted(&HandshakeError{Side: sideServer, Reason: ReasonNotAdmitted}) {
		t.Fatal("NotAdmitted true for what is not a client-side ReasonNotAdmitted")
	}
}
