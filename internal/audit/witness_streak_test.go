package audit

import (
	"context"
	"errors"
	"testing"
)

// Unwitnessed follows the streak: it counts notes not judged in a row, and
// a proof ends it.
func TestWitnessUnwitnessedStreak(t *testing.T) {
	pk := testKey(t, 2)
	me, _ := openTest(t, testKey(t, 1), nil)
	w := me.Witness()
	honest := newPeerLog(t, pk, 10, "")
	if err := w.Observe(t.Context(), pk.Public(), honest.note(t), honest.consistency); err != nil {
		t.Fatal(err)
	}
	if n := w.Unwitnessed(pk.Public()); n != 0 {
		t.Fatalf("streak %d after a judged note", n)
	}
	grown := newPeerLog(t, pk, 12, "")
	down := func(context.Context, uint64, uint64) ([][32]byte, error) {
		return nil, errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	for i := 1; i <= 3; i++ {
		w.Observe(t.Context(), pk.Public(), grown.note(t), down)
		if n := w.Unwitnessed(pk.Public()); n != i {
			t.Fatalf("after %d unjudged notes: streak %d", i, n)
		}
	}
	if n := w.Unwitnessed(testKey(t, 3).Public()); n != 0 {
		t.Fatalf("a peer never seen has streak %d", n)
	}
	if err := w.Observe(t.Context(), pk.Public(), grown.note(t), grown.consistency); err != nil {
		t.Fatal(err)
	}
	if n := w.Unwitnessed(pk.Public()); n != 0 {
		t.Fatalf("streak %d after a proof", n)
	}
}
