package testnet

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/node"
)

// TestRotationFloodThroughPushes: acme publishes rotations between fresh
// keys of its own, more than a member's allowance, then a real rotation of
// its key. The other members write none of the fresh ones to their ledger,
// audit them as statement.refused naming acme, and still apply the real
// one, naming acme as its relayer (ADR 22).
func TestRotationFloodThroughPushes(t *testing.T) {
	c := NewCluster(t, 3, Options{Names: []string{"acme", "globex", "initech"}})
	acme := c.Member("acme")
	ctx := t.Context()
	const flood = 40 // past the allowance of 32; each refused push is tried 3 times
	for range flood {
		a, _ := identity.Generate(nil)
		b, _ := identity.Generate(nil)
		_, text, err := membership.SignRotation(a, b, c.Clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acme.Node().Publish(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	key, err := identity.LoadKeyFile(acme.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	next, _ := identity.Generate(nil)
	_, rot, err := membership.SignRotation(key, next, c.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if acked, err := acme.Node().Publish(ctx, rot); err != nil || acked != 2 {
		t.Fatalf("the real rotation: acked %d, err %v; want both members", acked, err)
	}
	for _, m := range c.Members[1:] {
		// Acknowledged once written; applied just after.
		eventually(t, spreadBound, m.Name+" applies the real rotation", func() bool {
			return m.Node().Admitted(next.Public()) && !m.Node().Admitted(acme.ID) &&
				len(m.Audit(t, auditFilter(node.KindKeyRotated))) > 0
		})
		b, err := os.ReadFile(filepath.Join(m.Home, node.AdmissionFile))
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			Rotations []string `json:"rotations"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Rotations) != 1 || l.Rotations[0] != rot {
			t.Errorf("%s: ledger holds %d rotations, want only the real one", m.Name, len(l.Rotations))
		}
		refused := m.Audit(t, auditFilter(node.KindStmtRefused))
		if len(refused) == 0 || len(refused) > 2 {
			t.Errorf("%s: %d statement.refused entries, want 1 or 2 (aggregated)", m.Name, len(refused))
		}
		for _, e := range refused {
			if e.Peer != acme.ID.String() {
				t.Errorf("%s: statement.refused names %q, want acme", m.Name, e.Peer)
			}
		}
		rotated := m.Audit(t, auditFilter(node.KindKeyRotated))
		if len(rotated) != 1 {
			t.Fatalf("%s: %d key.rotated entries, want 1", m.Name, len(rotated))
		}
		var r map[string]any
		_ = json.Unmarshal(rotated[0].Report, &r)
		if r["relayed_by"] != acme.ID.String() {
			t.Errorf("%s: key.rotated relayed by %v, want acme", m.Name, r["relayed_by"])
		}
	}
}
