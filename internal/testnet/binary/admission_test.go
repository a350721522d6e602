package binary

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// peerBook is `treaty peer ls --json` of n.
func peerBook(t *testing.T, n *testnet.Node) map[string]localapi.PeerInfo {
	t.Helper()
	out, errOut, code := n.Run(t, "peer", "ls", "--json")
	if code != 0 {
		t.Fatalf("%s: peer ls: exit %d: %s", n.Name, code, errOut)
	}
	var ps []localapi.PeerInfo
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("%s: peer ls --json: %v", n.Name, err)
	}
	m := map[string]localapi.PeerInfo{}
	for _, p := range ps {
		m[p.ID] = p
	}
	return m
}

// TestAdmissionThroughTheCLI runs 8 node processes that never see a `peer add`:
// each joins by an invite of a member, and every member learns it; then one
// rotates its key (keeping its grant) and one is revoked from another
// member's node with a revocation prepared in advance.
func TestAdmissionThroughTheCLI(t *testing.T) {
	bin := treatyBin(t)
	const count = 8
	nodes := make([]*testnet.Node, count)
	for i := range nodes {
		nodes[i] = testnet.Init(t, bin, fmt.Sprintf("org%d", i))
		appendConfig(t, nodes[i], fmt.Sprintf("membership:\n  enabled: true\n  org: Org %d\n", i))
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.Start(t) })
	}
	wg.Wait()

	// Join by invite, each through a member that joined before it.
	for i := 1; i < count; i++ {
		inviter := nodes[(i-1)/2]
		tok := strings.TrimSpace(inviter.Must(t, "invite", "--ttl", "10m", "--uses", "1"))
		out := nodes[i].Must(t, "join", tok)
		if !strings.Contains(out, inviter.ID) {
			t.Fatalf("join output %q does not name the inviter %s", out, inviter.ID)
		}
		// The token is spent.
		if _, errOut, code := nodes[i].Run(t, "join", tok); code != 3 {
			t.Fatalf("a spent token: exit %d (%s), want 3", code, errOut)
		}
	}
	testnet.Eventually(t, 30*time.Second, func() error {
		for _, n := range nodes {
			if got := len(peerBook(t, n)); got != count-1 {
				return fmt.Errorf("%s knows %d members, want %d", n.Name, got, count-1)
			}
		}
		return nil
	})
	// Where the entries came from, and knowing grants nothing.
	book := peerBook(t, nodes[0])
	if p := book[nodes[1].ID]; p.Source != "invite" {
		t.Fatalf("org0's entry for the node it invited: source %q, want invite", p.Source)
	}
	if p := book[nodes[7].ID]; p.Source != "gossip" {
		t.Fatalf("org0's entry for a node another member invited: source %q, want gossip", p.Source)
	}
	org1, org3, org7 := nodes[1], nodes[3], nodes[7]
	org1.Must(t, "expose", "echo", "--exec", testnet.WriteScript(t, `cat`))
	if _, _, code := org7.Run(t, "call", "org1", "echo", `{"a":1}`); code != 3 {
		t.Fatalf("an ungranted call from a member that joined by invite: exit %d, want 3", code)
	}
	org1.Must(t, "grant", org7.ID, "echo")
	testnet.Eventually(t, 10*time.Second, func() error {
		if _, errOut, code := org7.Run(t, "call", "org1", "echo", `{"a":1}`); code != 0 {
			return fmt.Errorf("granted call: exit %d: %s", code, errOut)
		}
		return nil
	})

	// Rotation: org7 gets a new key; every member follows, the grant stays.
	old := org7.ID
	newID := strings.TrimSpace(org7.Must(t, "rotate"))
	if newID == old || !strings.HasPrefix(newID, "did:key:") {
		t.Fatalf("rotate printed %q", newID)
	}
	testnet.Eventually(t, 30*time.Second, func() error {
		out, _, code := org7.Run(t, "id")
		if code != 0 || strings.TrimSpace(out) != newID {
			return fmt.Errorf("org7's home has key %q, want %s", out, newID)
		}
		for _, n := range nodes[:count-1] {
			b := peerBook(t, n)
			if _, ok := b[old]; ok {
				return fmt.Errorf("%s still has the old key", n.Name)
			}
			if _, ok := b[newID]; !ok {
				return fmt.Errorf("%s lacks the new key", n.Name)
			}
		}
		_, errOut, code := org7.Run(t, "call", "org1", "echo", `{"after":"rotation"}`)
		if code != 0 {
			return fmt.Errorf("call after rotation: exit %d: %s", code, errOut)
		}
		return nil
	})
	org7.ID = newID

	// Revocation: prepared by org3 in advance, published from org0's node.
	revFile := filepath.Join(t.TempDir(), "org3.revoke")
	org3.Must(t, "revoke", "--prepare", revFile)
	org1.Must(t, "grant", org3.ID, "echo")
	testnet.Eventually(t, 10*time.Second, func() error {
		if _, errOut, code := org3.Run(t, "call", "org1", "echo", `{}`); code != 0 {
			return fmt.Errorf("org3's call before the revocation: exit %d: %s", code, errOut)
		}
		return nil
	})
	start := time.Now()
	nodes[0].Must(t, "revoke", revFile)
	testnet.Eventually(t, 10*time.Second, func() error {
		for _, n := range nodes {
			if n == org3 {
				continue
			}
			if _, ok := peerBook(t, n)[org3.ID]; ok {
				return fmt.Errorf("%s still has org3", n.Name)
			}
		}
		return nil
	})
	t.Logf("revocation out of every peer book after %v", time.Since(start))
	if _, errOut, code := org3.Run(t, "call", "org1", "echo", `{}`); code != 4 {
		t.Fatalf("org3 after its revocation: exit %d (%s), want 4 (handshake refused)", code, errOut)
	}
	out := org1.Must(t, "members", "--json")
	var ms []localapi.MemberInfo
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, m := range ms {
		status[m.ID] = m.Status
	}
	if status[org3.ID] != "revoked" || !strings.HasPrefix(status[old], "superseded") || status[newID] != "member" {
		t.Fatalf("members on org1: %s", out)
	}
}
