package membership

import (
	"fmt"
	"testing"
	"time"
)

// TestHeldRotationsFloodIsBoundedAndFair: a member relays 10,000 rotations
// between fresh keys, slowly enough that its allowance never runs out. The
// store stays at its bound, and the flood displaces only the flooder's own
// rotations: an honest relayer's one, held before the flood, is still held
// (found by either key) after it.
func TestHeldRotationsFloodIsBoundedAndFair(t *testing.T) {
	t.Parallel()
	const max = 64
	flood := 10_000
	if raceEnabled {
		flood = 2_000 // deriving keys is 10x slower; the bound is the same
	}
	h, err := NewHeldRotations(HeldConfig{Max: max, Burst: 8, Refill: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	flooder, honest := testKey(t, 1).Public(), testKey(t, 2).Public()
	legit, text, err := SignRotation(testKey(t, 3), testKey(t, 4), t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	if got := h.Hold(honest, legit, text, now); got != HoldNew {
		t.Fatalf("honest relayer's rotation: %v, want HoldNew", got)
	}
	for i := range flood {
		now = now.Add(time.Second) // one refill per rotation: never over the rate
		// Hold trusts its caller to have verified the rotation.
		r := Rotation{Old: testKey(t, 1000+2*i).Public(), New: testKey(t, 1001+2*i).Public(), Issued: t0}
		if got := h.Hold(flooder, r, fmt.Sprint("rotation ", i), now); got != HoldNew {
			t.Fatalf("flood rotation %d: %v, want HoldNew", i, got)
		}
		if h.Len() > max {
			t.Fatalf("after %d rotations %d held, want at most %d", i+1, h.Len(), max)
		}
	}
	if h.HeldBy(honest) != 1 || !h.Names(legit.Old) || !h.Names(legit.New) {
		t.Errorf("the honest relayer's rotation was displaced by the flood (held by it: %d)", h.HeldBy(honest))
	}
	if h.HeldBy(flooder) != max-1 {
		t.Errorf("flooder holds %d, want the rest of the store, %d", h.HeldBy(flooder), max-1)
	}
	if h.Names(testKey(t, 1000).Public()) {
		t.Error("an evicted rotation is still indexed by its old key")
	}
}

// TestHeldRotationsAllowance: a relayer gets Burst rotations held, then one
// per Refill; more are refused (HoldOverRate), not held, and cost no other
// relayer its allowance. A rotation held already is not charged again.
func TestHeldRotationsAllowance(t *testing.T) {
	t.Parallel()
	h, err := NewHeldRotations(HeldConfig{Max: 100, Burst: 4, Refill: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	flooder, honest := testKey(t, 1).Public(), testKey(t, 2).Public()
	rot := func(i int) (Rotation, string) {
		return Rotation{Old: testKey(t, 100+2*i).Public(), New: testKey(t, 101+2*i).Public(), Issued: t0}, fmt.Sprint("r", i)
	}
	for i := range 4 {
		r, text := rot(i)
		if got := h.Hold(flooder, r, text, t0); got != HoldNew {
			t.Fatalf("rotation %d within the burst: %v", i, got)
		}
	}
	r, text := rot(0)
	if got := h.Hold(flooder, r, text, t0); got != HoldAlready {
		t.Fatalf("a rotation held already: %v, want HoldAlready", got)
	}
	r, text = rot(4)
	if got := h.Hold(flooder, r, text, t0.Add(30*time.Second)); got != HoldOverRate {
		t.Fatalf("over the burst: %v, want HoldOverRate", got)
	}
	if h.Names(r.Old) {
		t.Error("a rotation over the rate is held")
	}
	r, text = rot(5)
	if got := h.Hold(honest, r, text, t0); got != HoldNew {
		t.Fatalf("another relayer: %v, want HoldNew", got)
	}
	r, text = rot(4)
	if got := h.Hold(flooder, r, text, t0.Add(time.Minute)); got != HoldNew {
		t.Fatalf("after a refill: %v, want HoldNew", got)
	}
}

// TestHeldRotationsTake: Take gives back, once, every held rotation naming
// a key as old or new; OldKeysTo finds the rotations to a key only.
func TestHeldRotationsTake(t *testing.T) {
	t.Parallel()
	h, err := NewHeldRotations(HeldConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, x := testKey(t, 1).Public(), testKey(t, 2).Public(), testKey(t, 3).Public(), testKey(t, 4).Public()
	relayer := testKey(t, 9).Public()
	for i, r := range []Rotation{{Old: a, New: b}, {Old: b, New: c}, {Old: x, New: b}} {
		r.Issued = t0
		if got := h.Hold(relayer, r, fmt.Sprint("r", i), t0); got != HoldNew {
			t.Fatalf("rotation %d: %v", i, got)
		}
	}
	olds := h.OldKeysTo(b)
	if len(olds) != 2 || olds[0] != a || olds[1] != x {
		t.Errorf("old keys of the rotations to b: %v, want a and x", olds)
	}
	got := h.Take(b)
	if len(got) != 3 || got[0].Text != "r0" || got[1].Text != "r1" || got[2].Text != "r2" || got[0].Relayer != relayer {
		t.Fatalf("Take(b) = %+v, want all three, oldest first, with their relayer", got)
	}
	if h.Len() != 0 || h.HeldBy(relayer) != 0 || h.Names(a) || h.Names(c) || len(h.Take(b)) != 0 {
		t.Error("taken rotations are still held or indexed")
	}
}

func TestNewHeldRotationsNamesTheWrongField(t *testing.T) {
	t.Parallel()
	if _, err := NewHeldRotations(HeldConfig{Max: 1 << 17}); err == nil {
		t.Error("Max out of range accepted")
	}
	if _, err := NewHeldRotations(HeldConfig{Refill: time.Millisecond}); err == nil {
		t.Error("Refill out of range accepted")
	}
}
