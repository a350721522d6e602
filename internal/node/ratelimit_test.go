package node

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// TestRefusalBudgetBoundary: exactly burst refusals pass, the next waits for
// one refill period, and peers do not share an allowance.
func TestRefusalBudgetBoundary(t *testing.T) {
	t.Parallel()
	k1, _ := identity.Generate(nil)
	k2, _ := identity.Generate(nil)
	a, b := k1.Public(), k2.Public()
	r := newRefusalBudget(3, 1, 16)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !r.allow(a, t0) {
			t.Fatalf("refusal %d of a burst of 3 not allowed", i)
		}
		r.spend(a, t0)
	}
	if r.allow(a, t0) || r.allow(a, t0.Add(999*time.Millisecond)) {
		t.Fatal("allowed past the burst before one refill period")
	}
	if !r.allow(b, t0) {
		t.Fatal("another peer refused: allowances are per peer")
	}
	if !r.allow(a, t0.Add(time.Second)) {
		t.Fatal("not allowed after one refill period")
	}
	r.spend(a, t0.Add(time.Second))
	if r.allow(a, t0.Add(time.Second)) {
		t.Fatal("one refill allowed two refusals")
	}
	// Spending an empty allowance does not go into debt.
	r.spend(a, t0.Add(time.Second))
	if !r.allow(a, t0.Add(2*time.Second)) {
		t.Fatal("allowance went below zero")
	}
}

// TestRefusalBudgetBounded: the buckets held never exceed the bound.
func TestRefusalBudgetBounded(t *testing.T) {
	t.Parallel()
	r := newRefusalBudget(3, 1, 8)
	t0 := time.Unix(1000, 0)
	for i := range 100 {
		k, _ := identity.Generate(nil)
		r.spend(k.Public(), t0.Add(time.Duration(i)*time.Millisecond))
		if len(r.peers) > 8 {
			t.Fatalf("%d buckets held, bound 8", len(r.peers))
		}
	}
}

func TestSpendsRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stage refusal.Stage
		err   error
		want  bool
	}{
		{refusal.StageWire, nil, true},
		{refusal.StagePolicy, errNotGranted, true},
		{refusal.StageBudget, refusal.New(refusal.StageBudget, "rate"), true},
		{refusal.StageBudget, errTooManyRefused, false},
		{refusal.StageTrust, nil, false},
		{refusal.StageBackend, nil, false},
		{refusal.StageScreen, nil, false},
	} {
		if got := spendsRefusal(tc.stage, tc.err); got != tc.want {
			t.Errorf("spendsRefusal(%s, %v) = %v, want %v", tc.stage, tc.err, got, tc.want)
		}
	}
}
