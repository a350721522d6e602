package budget

import (
	"math"
	"strings"
	"testing"
	"time"
)

// A rate so low that the next token is centuries away (valid: above zero)
// names that wait, capped, and never "resets now": the float-to-Duration
// conversion overflowed, and a client retrying at ResetIn would spin.
func TestTinyRateResetDoesNotOverflow(t *testing.T) {
	t.Parallel()
	p := peerID(t, 1)
	l := newLimiter(t, Config{Default: Limit{Rate: 1e-12}})
	acquireN(t, l, p, "c", In, 1, t0)
	_, err := l.Acquire(p, "c", In, 0, t0)
	e := mustExceed(t, err, BudgetRate)
	if e.ResetIn != time.Duration(math.MaxInt64) {
		t.Fatalf("ResetIn = %v, want the longest Duration", e.ResetIn)
	}
	if strings.Contains(e.Error(), "resets now") {
		t.Fatalf("message %q", e.Error())
	}
}

// A capability rule removed by one reload and restored by the next still
// counts the calls that ran all along: the counters of a capability no rule
// names are dropped only once nothing is in flight on them.
func TestRuleRemovedAndRestoredCountsCallsInFlight(t *testing.T) {
	t.Parallel()
	p := peerID(t, 1)
	with := Config{Rules: []Rule{{Peer: "*", Capability: "c", Dir: In, Limit: Limit{Concurrency: 1}}}}
	l := newLimiter(t, with)
	tk, err := l.Acquire(p, "c", In, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(Config{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Update(with); err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire(p, "c", In, 0, t0)
	mustExceed(t, err, BudgetConcurrency)
	tk.Release(0, 0, t0)
	tk2, err := l.Acquire(p, "c", In, 0, t0)
	if err != nil {
		t.Fatalf("after the call ended: %v", err)
	}
	tk2.Release(0, 0, t0)
	// Once idle, a capability no rule names keeps no counters.
	if err := l.Update(Config{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Snapshot(t0) {
		if s.Key.Capability == "c" {
			t.Fatalf("counters kept for a capability no rule names: %+v", s)
		}
	}
}
