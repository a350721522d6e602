package budget

import (
	"testing"
	"time"
)

// TestMoveKeepsWhatTheOldKeySpent: a rotation must not reset a budget, or
// rotating a stolen key would be a way around every limit.
func TestMoveKeepsWhatTheOldKeySpent(t *testing.T) {
	t.Parallel()
	old, rotated := peerID(t, 1), peerID(t, 2)
	l := newLimiter(t, Config{
		Rules: []Rule{
			{Peer: old, Limit: Limit{Rate: 1, Burst: 3}},
			{Peer: rotated, Limit: Limit{Rate: 1, Burst: 3}}, // the rule moved with the key
			{Peer: "*", Capability: "llm", Limit: Limit{Cost: 10, CostWindow: time.Hour}},
		},
		Breaker: BreakerConfig{MinCalls: 1, Cooldown: time.Minute},
	})
	acquireN(t, l, old, "", In, 3, t0)
	tk, err := l.Acquire(old, "llm", Out, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	tk.Release(10, 0, t0)
	b := l.Breaker(old)
	if err := callEnds(b, false, t0); err != nil {
		t.Fatal(err)
	}
	if b.State(t0) != StateOpen {
		t.Fatalf("breaker %s, want open", b.State(t0))
	}

	l.Move(old, rotated)

	_, err = l.Acquire(rotated, "", In, 0, t0)
	mustExceed(t, err, BudgetRate)
	_, err = l.Acquire(rotated, "llm", Out, 0, t0)
	mustExceed(t, err, BudgetCost)
	if st := l.BreakerState(rotated, t0); st != StateOpen {
		t.Fatalf("breaker of the new key %s, want open", st)
	}
	if _, err := l.Breaker(rotated).Allow(t0); err == nil {
		t.Fatal("the new key's breaker let a call through")
	}
	for _, s := range l.Snapshot(t0) {
		if s.Key.Peer == old && s.Live {
			t.Fatalf("the old key still has counters: %+v", s)
		}
	}
	// The moved counters follow the new key's limits from now on.
	acquireN(t, l, rotated, "", In, 1, t0.Add(time.Second))
}

func TestMoveUnknownPeerIsNoop(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Default: Limit{Rate: 1, Burst: 1}})
	l.Move(peerID(t, 3), peerID(t, 4))
	acquireN(t, l, peerID(t, 4), "", In, 1, t0)
}
