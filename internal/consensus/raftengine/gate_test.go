package raftengine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// budgetGate is what the node's gate does, reduced to the budget: each
// member's forwarded proposals are charged on capability group:reviews.
func budgetGate(t *testing.T, lim *budget.Limiter) func(identity.PublicKey, int) (func(), error) {
	return func(member identity.PublicKey, size int) (func(), error) {
		tk, err := lim.Acquire(member.String(), "group:reviews", budget.In, int64(size), time.Now())
		if err != nil {
			return nil, refusal.Wrap(refusal.StageBudget, err)
		}
		return func() { tk.Release(0, 0, time.Now()) }, nil
	}
}

// TestFloodingMemberIsLimited: a follower that floods the leader with
// proposals gets budget refusals (stage budget, nothing appended), while
// another follower, on its own counters, keeps committing.
func TestFloodingMemberIsLimited(t *testing.T) {
	cfg := budget.Config{Rules: []budget.Rule{{Peer: "*", Capability: "group:reviews", Dir: budget.In, Limit: budget.Limit{Rate: 1, Burst: 3}}}}
	tc := newClusterHooked(t, 3, 3, testTiming(), func(i int, c *consensus.EngineConfig) {
		lim, err := budget.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.AdmitRequest = budgetGate(t, lim)
	})
	l := tc.leader(30 * time.Second)
	flooder, honest := (l+1)%3, (l+2)%3

	const flood = 30
	var mu sync.Mutex
	var ok, refused int
	var other []error
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			a, err := tc.engine(flooder).ProposeFunc(ctx, tc.sign(flooder, fsm.Put(fmt.Sprintf("flood/%d", i), []byte("x"))))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && a.Result.OK():
				ok++
			case refusal.StageOf(err) == refusal.StageBudget && strings.Contains(err.Error(), "rate limit"):
				refused++
			case err == nil:
				other = append(other, a.Result.Err())
			default:
				other = append(other, err)
			}
		})
	}
	// Meanwhile the honest follower commits its burst on its own counters.
	honestErrs := make(chan error, 3)
	wg.Go(func() {
		for k := range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			a, err := tc.engine(honest).ProposeFunc(ctx, tc.sign(honest, fsm.Put(fmt.Sprintf("during/%d", k), []byte("y"))))
			cancel()
			if err == nil && !a.Result.OK() {
				err = a.Result.Err()
			}
			honestErrs <- err
		}
	})
	wg.Wait()
	for range 3 {
		if err := <-honestErrs; err != nil {
			t.Fatalf("honest member during the flood: %v", err)
		}
	}
	if len(other) > 0 {
		t.Fatalf("flood: %d other outcomes, first: %v", len(other), other[0])
	}
	if ok < 1 || refused < flood/2 {
		t.Fatalf("flood of %d: %d committed, %d refused for budget; want most refused", flood, ok, refused)
	}
	if i := tc.agreedLeader(); i != l {
		t.Logf("leader moved from %d to %d during the flood", l, i)
	}
	// The leader's own proposals are not forwarded, so not charged.
	var last consensus.Applied
	for k := range 5 {
		last = tc.propose(l, fsm.Put(fmt.Sprintf("leader/%d", k), []byte("z")))
	}
	tc.converge(last.Index, 20*time.Second)
	if _, found := tc.get(flooder, "during/2"); !found {
		t.Fatal("the honest member's entry is missing on the flooder")
	}
}

// TestGateRefusalOnTheWire: the stage and reason survive the forwarding
// stream; a stage other than trust is taken as budget; the leader's reason
// is bounded and loses control characters.
func TestGateRefusalOnTheWire(t *testing.T) {
	k := tcKey(t)
	err := gateRefusal(k, gateBody(refusal.New(refusal.StageTrust, "member %s is quarantined", "x")))
	if refusal.StageOf(err) != refusal.StageTrust || !strings.Contains(err.Error(), "quarantined") {
		t.Fatalf("trust: %v", err)
	}
	err = gateRefusal(k, gateBody(errors.New("plain")))
	if refusal.StageOf(err) != refusal.StageBudget {
		t.Fatalf("plain error: %v", err)
	}
	err = gateRefusal(k, []byte("usage\x00a\x1b[31mred\n"+strings.Repeat("z", 4096)))
	if refusal.StageOf(err) != refusal.StageBudget || strings.ContainsAny(err.Error(), "\x1b\n") || len(err.Error()) > maxGateReason+200 {
		t.Fatalf("hostile body: %q", err)
	}
	if err := gateRefusal(k, nil); refusal.StageOf(err) != refusal.StageBudget {
		t.Fatalf("empty body: %v", err)
	}
}

func tcKey(t *testing.T) identity.PublicKey {
	k, err := identity.FromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}
