package node

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/trust"
)

// Quarantine records severe evidence against peer at n, as a forged
// signature would.
func Quarantine(t testing.TB, n *Node, peer identity.PublicKey) {
	t.Helper()
	if _, err := n.trust.Observe(peer.String(), trust.Evidence{Kind: trust.KindEquivocation, Detail: "test", At: n.now()}); err != nil {
		t.Fatal(err)
	}
	if !n.trust.Standing(peer.String(), n.now()).Quarantined {
		t.Fatal("severe evidence did not quarantine")
	}
}

// RefuseKey makes n refuse k as a revocation would, without telling anyone.
func RefuseKey(n *Node, k identity.PublicKey, why string) {
	m := map[identity.PublicKey]string{k: why}
	if old := n.adm.refused.Load(); old != nil {
		for key, w := range *old {
			m[key] = w
		}
	}
	n.adm.refused.Store(&m)
}
