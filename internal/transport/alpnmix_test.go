package transport

import (
	"crypto/tls"
	"fmt"
	"io"
	"testing"
	"time"
)

// TestStrangerOfferingSeveralProtocols: a key admitted for one protocol only
// (ProtoAdmitter) that offers that protocol together with another, in either
// order, never ends up on the other one: the server picks one of the offers
// and admission is checked for the protocol picked.
func TestStrangerOfferingSeveralProtocols(t *testing.T) {
	t.Parallel()
	srvKey, stranger := testKey(t, 1), testKey(t, 2)
	const joinProto = "treaty-join-test/1"
	tr, err := New(Config{Identity: srvKey, Peers: joinOnly{admit(), joinProto}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := &node{Transport: tr, key: srvKey, rec: &recorder{}}
	serveEcho(t, srv, joinProto)
	serveEcho(t, srv, testProto)
	serveEcho(t, srv, "treaty-other-test/1")
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	cert, err := newCert(stranger, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := range 20 {
		offer := []string{testProto, joinProto, "treaty-other-test/1"}
		offer[0], offer[i%3] = offer[i%3], offer[0]
		joinOnly := i%4 == 3
		if joinOnly { // the control: the admitted protocol alone is served
			offer = []string{joinProto}
		}
		c, err := tls.Dial("tcp", srv.addr(), &tls.Config{Certificates: []tls.Certificate{*cert}, InsecureSkipVerify: true,
			NextProtos: offer, MinVersion: tls.VersionTLS13})
		if err != nil {
			if joinOnly {
				t.Fatalf("offer %v refused: %v", offer, err)
			}
			continue // refused during the handshake
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = io.ReadFull(c, b[:])
		proto := c.ConnectionState().NegotiatedProtocol
		c.Close()
		if err != nil {
			if joinOnly {
				t.Fatalf("offer %v refused: %v", offer, err)
			}
			continue // refused: an alert in place of the acceptance marker
		}
		if b[0] != acceptMarker || proto != joinProto {
			t.Fatalf("offer %v: accepted on %q (first byte %#x); a stranger may only reach %q", offer, proto, b[0], joinProto)
		}
		accepted++
	}
	t.Logf("%d of 20 offers accepted (5 of them %s alone), all on %s", accepted, joinProto, joinProto)
}

// TestALPNChoiceIsStable: a client offering several protocols the server
// serves gets the same one every time, whatever order the server's
// protocols were registered or re-registered in (it was the order of a map).
func TestALPNChoiceIsStable(t *testing.T) {
	t.Parallel()
	srvKey, cli := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, srvKey, admit(cli.Public()), Config{})
	for _, p := range []string{"treaty-d-test/1", "treaty-b-test/1", "treaty-a-test/1", "treaty-c-test/1"} {
		serveEcho(t, srv, p)
	}
	cert, err := newCert(cli, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := range 16 {
		// Each registration and close rebuilds the server's configuration.
		extra := srv.Listener(fmt.Sprintf("treaty-extra-test/%d", i))
		c, err := tls.Dial("tcp", srv.addr(), &tls.Config{Certificates: []tls.Certificate{*cert}, InsecureSkipVerify: true,
			NextProtos: []string{"treaty-c-test/1", "treaty-a-test/1", "treaty-d-test/1"}, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		seen[c.ConnectionState().NegotiatedProtocol]++
		c.Close()
		extra.Close()
	}
	if len(seen) != 1 {
		t.Fatalf("one offer negotiated %v across rebuilds, want one protocol every time", seen)
	}
}
