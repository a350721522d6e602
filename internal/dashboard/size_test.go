package dashboard

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/catalogue"
	"github.com/treaty-dev/treaty/localapi"
)

// maxNode answers with as much as each part of the node's API may hold:
// peer-controlled text (motion texts, refusal reasons) at its longest.
type maxNode struct{ fakeNode }

func did(kind string, i int) string { return fmt.Sprintf("did:key:z6Mk%s%044d", kind, i) }

func (m *maxNode) Groups(context.Context) ([]localapi.GroupInfo, error) {
	var gs []localapi.GroupInfo
	now := time.Now()
	for g := range MaxGroups + 5 {
		gi := localapi.GroupInfo{Name: fmt.Sprintf("g%063d", g), Mode: "bft", Leader: did("L", g), Healthy: true}
		for i := range 128 { // fsm.MaxMembers
			gi.Members = append(gi.Members, localapi.GroupMember{ID: did("M", i), Name: strings.Repeat("n", 64),
				LastContact: &now, Refused: strings.Repeat("r", 4<<10)})
		}
		gs = append(gs, gi)
	}
	return gs, nil
}

func (m *maxNode) MotionList(_ context.Context, group string) ([]localapi.MotionInfo, error) {
	var ms []localapi.MotionInfo
	for i := range MaxMotions + 5 {
		mi := localapi.MotionInfo{Name: fmt.Sprintf("m%063d", i), Kind: "plain", Proposer: did("P", i), Quorum: 86,
			Text: strings.Repeat("t", 4<<10), Outcome: "open", Reason: strings.Repeat("x", 4<<10), Opened: 1}
		for v := range 128 {
			mi.Yes = append(mi.Yes, did("Y", v))
			mi.No = append(mi.No, did("N", v))
		}
		ms = append(ms, mi)
	}
	return ms, nil
}

func (m *maxNode) Members(context.Context) ([]localapi.MemberInfo, error) {
	var ms []localapi.MemberInfo
	for i := range MaxMembers + 5 {
		ms = append(ms, localapi.MemberInfo{Name: strings.Repeat("n", 64), ID: did("B", i), Addr: strings.Repeat("a", 64),
			Source: "gossip", Status: "member", State: "alive", Org: strings.Repeat("o", 64),
			Addrs: []string{strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64), strings.Repeat("d", 64)}})
	}
	return ms, nil
}

// maxSnapshot bounds the JSON of one snapshot, sent to every open page on
// every change.
const maxSnapshot = 3 << 20

// TestSnapshotSizeIsBounded: with every list at its limit and peer text at
// its longest, a snapshot stays under maxSnapshot.
func TestSnapshotSizeIsBounded(t *testing.T) {
	n := &maxNode{}
	trusts := map[string]catalogue.Trust{}
	for i := range MaxPeers + 5 {
		id := did("Q", i)
		n.peers = append(n.peers, localapi.PeerInfo{Name: strings.Repeat("p", 64), ID: id, Addr: strings.Repeat("a", 255), Breaker: "half-open", Unwitnessed: 1 << 20})
		trusts[id] = catalogue.Trust{Level: "provisional", Score: 0.123456789}
	}
	d, err := New(Options{Node: n, Home: t.TempDir(), Trust: func(context.Context) (map[string]catalogue.Trust, error) { return trusts, nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range n.peers { // a full sparkline each, as after two minutes
		for range MaxSamples {
			d.samples[p.ID] = append(d.samples[p.ID], 0.123456789)
		}
	}
	d.Refresh(t.Context(), true)
	b, _, _ := d.current()
	if len(b) > maxSnapshot {
		t.Fatalf("snapshot of %d bytes, want at most %d", len(b), maxSnapshot)
	}
	t.Logf("largest snapshot: %d bytes", len(b))
}
