package node

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestRefusalBudgetMoveOntoSpentKey: rotating onto a key whose allowance of
// refused requests is spent does not refill it from the old key's.
func TestRefusalBudgetMoveOntoSpentKey(t *testing.T) {
	t.Parallel()
	k1, _ := identity.Generate(nil)
	k2, _ := identity.Generate(nil)
	old, rotated := k1.Public(), k2.Public()
	r := newRefusalBudget(3, 1, 16)
	t0 := time.Unix(1000, 0)
	r.spend(old, t0) // 2 left
	for range 3 {
		r.spend(rotated, t0.Add(500*time.Millisecond)) // 0 left
	}
	r.move(old, rotated)
	if r.allow(rotated, t0.Add(500*time.Millisecond)) {
		t.Fatal("the rotated-onto key's spent allowance was refilled by the old key's")
	}
	if !r.allow(rotated, t0.Add(1500*time.Millisecond)) {
		t.Fatal("not allowed after one refill period")
	}
	if _, ok := r.peers[old]; ok {
		t.Fatal("the old key keeps an allowance")
	}
	// Onto a key without an allowance: the old key's moves as it is.
	k3, _ := identity.Generate(nil)
	for range 3 {
		r.spend(old, t0)
	}
	r.move(old, k3.Public())
	if r.allow(k3.Public(), t0) {
		t.Fatal("the old key's spent allowance did not move")
	}
}
