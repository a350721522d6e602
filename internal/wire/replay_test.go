package wire

import (
	"math/rand/v2"
	"testing"
	"time"
)

func rk(i int) ReplayKey {
	var k ReplayKey
	k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
	return k
}

func TestReplayWindow(t *testing.T) {
	w, err := NewReplayWindow(3)
	if err != nil {
		t.Fatal(err)
	}
	until := t0.Add(10 * time.Second)
	for i := range 3 {
		if err := w.Add(rk(i), until, t0); err != nil {
			t.Fatal(err)
		}
	}
	wantReason(t, w.Add(rk(0), until, t0), ReasonReplayed)
	wantReason(t, w.Add(rk(3), until, t0), ReasonReplayCacheFull)
	// Still remembered at the last instant of validity.
	wantReason(t, w.Add(rk(1), until, until), ReasonReplayed)
	// Dropped once expired, freeing room.
	after := until.Add(time.Nanosecond)
	if err := w.Add(rk(3), after.Add(time.Second), after); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 {
		t.Fatalf("Len = %d after expiry, want 1", w.Len())
	}
	// A key whose validity already ended is not stored.
	if err := w.Add(rk(4), t0, after); err != nil || w.Len() != 1 {
		t.Fatalf("stored an expired key: %v, Len %d", err, w.Len())
	}
	if _, err := NewReplayWindow(0); err == nil {
		t.Fatal("capacity 0 accepted")
	}
}

// TestReplayWindowModel drives the window with random adds over advancing
// time and compares it with a plain map model; memory never exceeds the
// capacity.
func TestReplayWindowModel(t *testing.T) {
	const seed, capacity = 7, 64
	rng := rand.New(rand.NewPCG(seed, seed))
	w, _ := NewReplayWindow(capacity)
	model := map[ReplayKey]time.Time{}
	now := t0
	for step := range 20000 {
		now = now.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
		for k, u := range model {
			if u.Before(now) {
				delete(model, k)
			}
		}
		key := rk(rng.IntN(400))
		until := now.Add(time.Duration(rng.IntN(10_000)) * time.Millisecond)
		err := w.Add(key, until, now)
		var want Reason
		switch _, held := model[key]; {
		case held:
			want = ReasonReplayed
		case len(model) >= capacity:
			want = ReasonReplayCacheFull
		default:
			model[key] = until
		}
		if got, _ := ReasonOf(err); got != want || (want == 0 && err != nil) {
			t.Fatalf("seed %d step %d: Add = %v, want reason %v", seed, step, err, want)
		}
		if w.Len() != len(model) || w.Len() > capacity {
			t.Fatalf("seed %d step %d: Len %d, model %d", seed, step, w.Len(), len(model))
		}
	}
}
