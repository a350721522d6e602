package node

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
)

func TestPeerAddrsKnowsPeerBookIPs(t *testing.T) {
	t.Parallel()
	key := func(b byte) identity.PublicKey {
		k, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32))
		if err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	n := &Node{}
	n.state.Store(&state{peers: map[identity.PublicKey]config.Peer{
		key(1): {Addr: "10.1.2.3:7420"},
		key(2): {Addr: "[2001:db8::7]:7420"},
		key(3): {Addr: "localhost:7420"},
		key(4): {Addr: "peer.example.org:7420"}, // names are not resolved
		key(5): {Addr: "garbage"},
	}})
	p := newPeerAddrs(n)
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"10.1.2.4", false},
		{"2001:db8::7", true},
		{"2001:db8::8", false},
		{"127.0.0.1", true},
		{"::1", true},
		{"127.0.0.2", false},
	} {
		if got := p.KnownAddr(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("KnownAddr(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	// A reload (a new state) is seen at the next lookup.
	n.state.Store(&state{peers: map[identity.PublicKey]config.Peer{key(1): {Addr: "10.9.9.9:1"}}})
	if p.KnownAddr(netip.MustParseAddr("10.1.2.3")) || !p.KnownAddr(netip.MustParseAddr("10.9.9.9")) {
		t.Fatal("the peer book change was not seen")
	}
}
