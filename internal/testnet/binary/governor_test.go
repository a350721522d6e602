package binary

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// TestGovernorThroughTheCLI: `treaty revoke PEER` and `treaty admit` with real
// processes. acme alone is the governing Raft group "board" (quorum 1, so its
// own vote passes each motion and --wait returns at once); globex is outside
// the group and checks its decisions against the definition in its
// treaty.yaml; umbrella has no governor at all.
func TestGovernorThroughTheCLI(t *testing.T) {
	bin := treatyBin(t)
	acme, globex, umbrella := testnet.Init(t, bin, "acme"), testnet.Init(t, bin, "globex"), testnet.Init(t, bin, "umbrella")
	for _, p := range [][2]*testnet.Node{{acme, globex}, {acme, umbrella}, {globex, umbrella}} {
		testnet.Federate(t, p[0], p[1])
	}
	appendConfig(t, acme, "membership:\n  governor:\n    group: board\n")
	appendConfig(t, globex, "membership:\n  governor:\n    group: board\n    mode: raft\n    members: ["+acme.ID+"]\n")
	for _, n := range []*testnet.Node{acme, globex, umbrella} {
		n.Start(t)
	}
	acme.Must(t, "group", "create", "board", "--mode", "raft", "--members", "acme")

	// Without a governor: usage (2). Outside the group: denied (3).
	if _, e, code := umbrella.Run(t, "revoke", "acme"); code != 2 || !strings.Contains(e, "membership.governor") {
		t.Fatalf("revoke without a governor: exit %d: %s", code, e)
	}
	if _, e, code := globex.Run(t, "revoke", "umbrella"); code != 3 || !strings.Contains(e, "not a member of the governing group") {
		t.Fatalf("revoke from outside the group: exit %d: %s", code, e)
	}

	// Admission by decision: delta is known to nobody until the group admits it.
	delta := testnet.Init(t, bin, "delta")
	delta.Start(t)
	out := eventuallyMust(t, acme, "admit", "--name", "delta", "--addr", delta.Addr, "--wait", delta.ID)
	if !strings.HasPrefix(strings.TrimSpace(out), "admit-") {
		t.Fatalf("admit printed %q, want the motion's name", out)
	}
	testnet.Eventually(t, 15*time.Second, func() error {
		for _, n := range []*testnet.Node{acme, globex} {
			if p, ok := peerBook(t, n)[delta.ID]; !ok || p.Source != "decision" || p.Addr != delta.Addr {
				return fmt.Errorf("%s's entry for delta: %+v", n.Name, p)
			}
		}
		return nil
	})

	// Revocation by decision, prints the motion and returns once passed.
	out = eventuallyMust(t, acme, "revoke", "umbrella", "--wait")
	motion := strings.TrimSpace(out)
	if !strings.HasPrefix(motion, "revoke-") {
		t.Fatalf("revoke printed %q, want the motion's name", out)
	}
	var shown localapi.MotionInfo
	if err := json.Unmarshal([]byte(acme.Must(t, "motion", "show", "board", motion, "--json")), &shown); err != nil || shown.Outcome != "passed" {
		t.Fatalf("motion show: %+v %v", shown, err)
	}
	testnet.Eventually(t, 15*time.Second, func() error {
		for _, n := range []*testnet.Node{acme, globex} {
			var ms []localapi.MemberInfo
			if err := json.Unmarshal([]byte(n.Must(t, "members", "--json")), &ms); err != nil {
				return err
			}
			for _, m := range ms {
				if m.ID == umbrella.ID && m.Status != "revoked" {
					return fmt.Errorf("%s shows umbrella as %s", n.Name, m.Status)
				}
			}
			if _, ok := peerBook(t, n)[umbrella.ID]; ok {
				return fmt.Errorf("%s still has umbrella in its book", n.Name)
			}
		}
		return nil
	})
	// The revoked key is refused at the handshake.
	if _, e, code := umbrella.Run(t, "caps", "globex"); code != 4 {
		t.Fatalf("umbrella after its revocation: exit %d: %s", code, e)
	}
}
