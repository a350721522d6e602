package node

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/localapi"
)

// TestBFTGroupFloodIsBudgeted: four nodes, real TLS, one BFT group with a
// budget of 1 proposal/s (burst 3) per member. A member that floods the
// view's leader gets budget refusals (stage budget, exit 3) at once rather
// than timeouts; another member keeps deciding on its own counters and the
// leader's own proposals are not charged.
func TestBFTGroupFloodIsBudgeted(t *testing.T) {
	nodes := groupNodesOf(t, "bft", "acme", "acme-eu", "acme-us", "acme-ap")
	l := groupLeader(t, nodes)
	leader, flooder, honest := nodes[l], nodes[(l+1)%4], nodes[(l+2)%4]

	const flood = 20
	var mu sync.Mutex
	var ok, refused int
	var other []error
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			err := putOn(flooder, fmt.Sprintf("flood/%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case refusal.StageOf(err) == refusal.StageBudget && localapi.ExitCode(err) == localapi.ExitDenied && strings.Contains(err.Error(), "rate limit"):
				refused++
			default:
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("flood: %d other outcomes, first: %v", len(other), other[0])
	}
	if ok < 1 || refused < flood/2 {
		t.Fatalf("flood of %d: %d decided, %d refused for budget; want most refused", flood, ok, refused)
	}
	for k := range 3 {
		if err := putOn(honest, fmt.Sprintf("honest/%d", k)); err != nil {
			t.Fatalf("honest member's put %d after the flood: %v", k, err)
		}
	}
	for k := range 5 {
		if err := putOn(leader, fmt.Sprintf("leader/%d", k)); err != nil {
			t.Fatalf("leader's put %d: %v", k, err)
		}
	}
	var audited int
	for _, e := range AuditEntries(t, leader) {
		if e.Kind == KindGroupRefused && e.Peer == flooder.ID().String() && e.Stage == "budget" {
			audited++
		}
	}
	if audited == 0 {
		t.Fatal("the leader audited no group.refused entry for the flooder")
	}
}
