package budget

import (
	"strings"
	"testing"
)

// TestFailedCallCharged: a call that failed at the backend still used the
// backend; it is charged the cost it reported, and at least the limit's
// FailedCost. With FailedCost zero (the default) nothing changes.
func TestFailedCallCharged(t *testing.T) {
	t.Parallel()
	p := peerID(t, 7)
	l := newLimiter(t, Config{Rules: []Rule{
		{Peer: p, Limit: Limit{Cost: 100, FailedCost: 2}},
		{Peer: p, Capability: "llm", Limit: Limit{Cost: 100, FailedCost: 5}},
		{Peer: p, Capability: "free", Limit: Limit{Cost: 100}},
	}})
	call := func(capability string, failed bool, cost float64) {
		t.Helper()
		tk, err := l.Acquire(p, capability, In, 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		if failed {
			tk.Failed()
		}
		tk.Release(cost, 0, t0)
	}
	costOf := func(capability string) float64 {
		t.Helper()
		return findStatus(l.Snapshot(t0), Key{p, capability, In}).Cost
	}
	call("llm", true, 0) // nothing reported: the minimum
	if got := costOf("llm"); got != 5 {
		t.Fatalf("a failed call without a report: llm cost %v, want 5", got)
	}
	if got := costOf(""); got != 2 { // each limit charges its own minimum
		t.Fatalf("a failed call without a report: peer-wide cost %v, want 2", got)
	}
	call("llm", true, 7) // more reported than the minimum: what was reported
	if got := costOf("llm"); got != 12 {
		t.Fatalf("a failed call reporting 7: llm cost %v, want 12", got)
	}
	call("llm", false, 0) // a result: only what it reported
	if got := costOf("llm"); got != 12 {
		t.Fatalf("a successful call: llm cost %v, want 12", got)
	}
	call("free", true, 0) // FailedCost 0: a failure costs what it reported, as before
	if got := costOf("free"); got != 0 {
		t.Fatalf("a failed call under FailedCost 0: cost %v, want 0", got)
	}
	var zero Ticket
	zero.Failed() // a refused call's zero Ticket: no effect, no panic
	zero.Release(1, 0, t0)

	for _, tc := range []struct {
		lim  Limit
		want string
	}{
		{Limit{Cost: 1, FailedCost: -1}, "FailedCost"},
		{Limit{Cost: 1, FailedCost: 2e15}, "FailedCost"},
		{Limit{FailedCost: 1}, "needs a Cost"},
	} {
		if err := tc.lim.Validate("L"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.lim, err, tc.want)
		}
	}
	if s := (Limit{Cost: 10, FailedCost: 1}).String(); !strings.Contains(s, "failed call at least 1") {
		t.Errorf("String() = %q, want the failed-call minimum named", s)
	}
}
