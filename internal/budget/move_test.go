package budget

import (
	"sync"
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

	l.Move(old, rotated, t0)

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
	l.Move(peerID(t, 3), peerID(t, 4), t0)
	acquireN(t, l, peerID(t, 4), "", In, 1, t0)
}

// TestMoveOntoKeyWithCountersKeepsTheLarger: rotating onto a key that has
// counters here already merges them, each keeping the larger spending; the
// old key's counters never replace the new key's (that would reset what the
// new key spent), calls in flight under either key stay counted, and one
// that ends after the rotation is charged to the new key.
func TestMoveOntoKeyWithCountersKeepsTheLarger(t *testing.T) {
	t.Parallel()
	old, rotated := peerID(t, 1), peerID(t, 2)
	l := newLimiter(t, Config{
		Default: Limit{Rate: 1, Burst: 5, BytesIn: 1000, Window: time.Minute},
		Rules:   []Rule{{Peer: "*", Capability: "llm", Dir: In, Limit: Limit{Cost: 10, CostWindow: time.Hour}}},
		Breaker: BreakerConfig{MinCalls: 1, Cooldown: time.Minute},
	})
	acquireN(t, l, old, "", In, 3, t0) // 2 tokens left
	oldTk, err := l.Acquire(old, "llm", In, 100, t0)
	if err != nil {
		t.Fatal(err)
	}
	oldTk.Release(3, 0, t0)
	oldLive, err := l.Acquire(old, "llm", In, 0, t0) // 0 tokens left, in flight across the move
	if err != nil {
		t.Fatal(err)
	}
	newTk, err := l.Acquire(rotated, "llm", In, 600, t0) // 4 tokens left
	if err != nil {
		t.Fatal(err)
	}
	newTk.Release(8, 0, t0)
	if err := callEnds(l.Breaker(rotated), false, t0); err != nil {
		t.Fatal(err)
	}
	if err := callEnds(l.Breaker(old), true, t0); err != nil { // closed
		t.Fatal(err)
	}

	l.Move(old, rotated, t0)

	wide := findStatus(l.Snapshot(t0), Key{rotated, "", In})
	llm := findStatus(l.Snapshot(t0), Key{rotated, "llm", In})
	if llm.Cost != 8 {
		t.Errorf("llm cost after the move %v, want 8 (the new key's, the larger)", llm.Cost)
	}
	if wide.BytesIn != 600 {
		t.Errorf("bytes in after the move %d, want 600 (the larger)", wide.BytesIn)
	}
	if wide.InFlight != 4 || llm.InFlight != 1 {
		t.Errorf("in flight after the move %d and %d, want 4 and 1", wide.InFlight, llm.InFlight)
	}
	_, err = l.Acquire(rotated, "", In, 0, t0) // the old key had spent every token
	mustExceed(t, err, BudgetRate)
	if st := l.BreakerState(rotated, t0); st != StateOpen {
		t.Errorf("the new key's open breaker is %s after the move, want open", st)
	}

	// The old key's call ends after the move: charged to the new key.
	oldLive.Release(2.5, 0, t0)
	llm = findStatus(l.Snapshot(t0), Key{rotated, "llm", In})
	if llm.Cost != 10.5 || llm.InFlight != 0 {
		t.Errorf("after the old key's call ended: cost %v in flight %d, want 10.5 and 0", llm.Cost, llm.InFlight)
	}
	for _, s := range l.Snapshot(t0) {
		if s.Key.Peer == old && s.Live {
			t.Fatalf("the old key still has counters: %+v", s)
		}
	}
}

// TestMoveDuringCalls: calls of both keys that start and end around a merge
// leave no call counted in flight, and none is lost or counted twice.
func TestMoveDuringCalls(t *testing.T) {
	t.Parallel()
	old, rotated := peerID(t, 1), peerID(t, 2)
	l := newLimiter(t, Config{Default: Limit{Concurrency: 1000, Cost: 1e9}})
	for _, p := range []string{old, rotated} { // counters exist for both keys
		tk, err := l.Acquire(p, "", In, 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		tk.Release(0, 0, t0)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, p := range []string{old, rotated, old, rotated} {
		wg.Go(func() {
			<-start
			for range 200 {
				tk, err := l.Acquire(p, "", In, 0, t0)
				if err != nil {
					t.Error(err)
					return
				}
				tk.Release(1, 0, t0)
			}
		})
	}
	close(start)
	l.Move(old, rotated, t0)
	wg.Wait()
	var cost float64
	for _, s := range l.Snapshot(t0) {
		if s.InFlight != 0 {
			t.Errorf("%+v: calls still in flight", s)
		}
		cost += s.Cost
	}
	// Each key's counters are kept or merged (max), never summed, so the
	// total is at most the calls made and at least those of one key.
	if cost < 400 || cost > 800 {
		t.Errorf("total cost %v, want within [400, 800]", cost)
	}
}
