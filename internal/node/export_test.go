package node

import (
	"context"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/wire"
)

// Hooks for the attack tests in package node_test.

// AuditEntries returns n's audit log, oldest first.
func AuditEntries(t testing.TB, n *Node) []audit.Entry {
	t.Helper()
	es, err := n.audit.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// SetRefusalInterval sets the aggregation interval; call it before Start.
func SetRefusalInterval(n *Node, d time.Duration) {
	n.refusals = newRefusalTallies(d, refusalMaxKeys)
}

// FlushRefusals writes every pending aggregated entry now.
func FlushRefusals(n *Node) { n.flushRefusals(context.Background(), true) }

// SetReplayWindow replaces n's verifier with one whose replay window holds
// capacity nonces, perPeer of them from any one peer.
func SetReplayWindow(t testing.TB, n *Node, capacity, perPeer int) {
	t.Helper()
	v, err := wire.NewVerifier(wire.VerifierConfig{Self: n.self, MaxDepth: wire.MaxChainHops, ReplayCapacity: capacity, ReplayPerPeer: perPeer})
	if err != nil {
		t.Fatal(err)
	}
	n.verifier.Close() // its journal; the replacement keeps the window in memory
	n.verifier = v
}

// ReplayPeerLen returns the nonces n holds for peer.
func ReplayPeerLen(n *Node, peer identity.PublicKey) int { return n.verifier.ReplayPeerLen(peer) }
