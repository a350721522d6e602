package transport

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

// PeerURL is "https://", the key's label and the path with one leading
// slash, for short paths (built on the stack) and long ones alike, and
// peerFromHost recovers the key from it.
func TestPeerURLForm(t *testing.T) {
	k, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := k.Public()
	label := hostEncoding.EncodeToString(peer.Bytes())
	if got := string(AppendPeerHost([]byte("x"), peer)); got != "x"+label {
		t.Fatalf("AppendPeerHost = %q, want %q", got, "x"+label)
	}
	for _, p := range []string{"", "/", "v1/call/echo", "/v1/call/echo", strings.Repeat("/long", 40), strings.Repeat("a", 67), strings.Repeat("a", 68)} {
		want := "https://" + label + "/" + strings.TrimPrefix(p, "/")
		if got := PeerURL(peer, p); got != want {
			t.Errorf("PeerURL(%q) = %q, want %q", p, got, want)
		}
	}
	got, err := peerFromHost(label)
	if err != nil || got != peer {
		t.Fatalf("peerFromHost(label) = %v, %v; want %v", got, err, peer)
	}
}
