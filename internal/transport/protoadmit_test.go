package transport

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

// joinOnly admits its peers for every protocol and anyone for one protocol.
type joinOnly struct {
	*peerSet
	proto string
}

func (j joinOnly) AdmittedFor(_ identity.PublicKey, proto string) bool { return proto == j.proto }

// TestProtoAdmitter: a PeerSource that is also a ProtoAdmitter lets an unknown
// key finish a handshake for the one protocol it names, and for no other.
func TestProtoAdmitter(t *testing.T) {
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
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	cli := newNode(t, stranger, admit(srvKey.Public()), Config{})

	c, err := cli.Dial(t.Context(), srv.addr(), srvKey.Public(), joinProto)
	if err != nil {
		t.Fatalf("stranger on the admitted protocol: %v", err)
	}
	if err := echo(t, c, "hello"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, proto := range []string{testProto, ProtoFederation} {
		_, err := cli.Dial(t.Context(), srv.addr(), srvKey.Public(), proto)
		if he := handshakeErr(t, err); he.Reason != ReasonNotAdmitted {
			t.Fatalf("stranger on %s: %v, want not admitted by peer", proto, he)
		}
	}
}
