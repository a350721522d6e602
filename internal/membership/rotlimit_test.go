package membership

import (
	"errors"
	"testing"
	"time"
)

// TestRotationLimitBoundsOneChain: a member rotates its key 100 times, one
// a second (A→B, B→C, …), and the node applies each rotation the limit lets
// through: one a minute is applied, the others are refused with a typed
// error saying how long to wait. Another member's single rotation passes.
func TestRotationLimitBoundsOneChain(t *testing.T) {
	t.Parallel()
	l, err := NewRotationLimit(RotationLimitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cur := testKey(t, 10).Public() // the member's live key
	now := t0
	applied, refused := 0, 0
	for i := range 100 {
		now = now.Add(time.Second)
		r := Rotation{Old: cur, New: testKey(t, 11+i).Public(), Issued: now}
		err := l.Check(r, now)
		var re *RotationRateError
		switch {
		case err == nil:
			l.Applied(r, now)
			cur = r.New
			applied++
		case errors.Is(err, ErrRotationTooSoon) && errors.As(err, &re) && re.Old == cur && re.Wait > 0 && re.Wait < RotationInterval:
			refused++
		default:
			t.Fatalf("rotation %d: %v, want nil or a RotationRateError", i, err)
		}
	}
	if applied != 2 || refused != 98 || l.Refused() != 98 { // at 1 s and at 61 s
		t.Errorf("applied %d, refused %d (counted %d) of 100 over 100 s; want 2 applied", applied, refused, l.Refused())
	}
	other := Rotation{Old: testKey(t, 500).Public(), New: testKey(t, 501).Public()}
	if err := l.Check(other, now); err != nil {
		t.Errorf("another member's single rotation: %v, want accepted", err)
	}
}

// TestRotationLimitMemoryIsBounded: more chains than Max are remembered by
// forgetting the expired ones first, then the oldest.
func TestRotationLimitMemoryIsBounded(t *testing.T) {
	t.Parallel()
	l, err := NewRotationLimit(RotationLimitConfig{Max: 4, Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rot := func(i int) Rotation {
		return Rotation{Old: testKey(t, 100+2*i).Public(), New: testKey(t, 101+2*i).Public()}
	}
	for i := range 10 {
		l.Applied(rot(i), t0.Add(time.Duration(i)*time.Second))
		if len(l.last) > 4 {
			t.Fatalf("%d chains remembered, want at most 4", len(l.last))
		}
	}
	// The newest chain is still bounded.
	next := Rotation{Old: rot(9).New, New: testKey(t, 999).Public()}
	if err := l.Check(next, t0.Add(10*time.Second)); !errors.Is(err, ErrRotationTooSoon) {
		t.Errorf("newest chain: %v, want refused", err)
	}
	for _, c := range []RotationLimitConfig{{Interval: time.Millisecond}, {Interval: 48 * time.Hour}, {Max: -1}, {Max: 1 << 17}} {
		if _, err := NewRotationLimit(c); err == nil {
			t.Errorf("NewRotationLimit(%+v) accepted", c)
		}
	}
}
