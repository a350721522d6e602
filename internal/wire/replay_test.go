package wire

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

func rk(i int) ReplayKey {
	var k ReplayKey
	k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
	return k
}

func TestReplayWindow(t *testing.T) {
	w, err := NewReplayWindow(3, 3)
	if err != nil {
		t.Fatal(err)
	}
	var p identity.PublicKey
	until := t0.Add(10 * time.Second)
	for i := range 3 {
		if err := w.Add(p, rk(i), until, t0); err != nil {
			t.Fatal(err)
		}
	}
	wantReason(t, w.Add(p, rk(0), until, t0), ReasonReplayed)
	wantReason(t, w.Add(p, rk(3), until, t0), ReasonReplayCacheFull)
	// Still remembered at the last instant of validity.
	wantReason(t, w.Add(p, rk(1), until, until), ReasonReplayed)
	// Dropped once expired, freeing room.
	after := until.Add(time.Nanosecond)
	if err := w.Add(p, rk(3), after.Add(time.Second), after); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 {
		t.Fatalf("Len = %d after expiry, want 1", w.Len())
	}
	// A key whose validity already ended is not stored.
	if err := w.Add(p, rk(4), t0, after); err != nil || w.Len() != 1 {
		t.Fatalf("stored an expired key: %v, Len %d", err, w.Len())
	}
	for _, c := range [][2]int{{0, 1}, {1 << 27, 1}, {4, 0}, {4, 5}} {
		if _, err := NewReplayWindow(c[0], c[1]); err == nil {
			t.Fatalf("NewReplayWindow(%d, %d) accepted", c[0], c[1])
		}
	}
}

// TestReplayWindowModel drives the window with random adds over advancing
// time and compares it with a plain map model; memory never exceeds the
// capacity.
func TestReplayWindowModel(t *testing.T) {
	const seed, capacity = 7, 64
	rng := rand.New(rand.NewPCG(seed, seed))
	w, _ := NewReplayWindow(capacity, capacity)
	var p identity.PublicKey
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
		err := w.Add(p, key, until, now)
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

func testPeer(t *testing.T) identity.PublicKey {
	t.Helper()
	k, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestReplayWindowPerPeerShare: a peer that fills its share has only its own
// nonces refused, at exactly the share's size; others keep theirs, and the
// share frees as its nonces expire.
func TestReplayWindowPerPeerShare(t *testing.T) {
	w, err := NewReplayWindow(10, 4)
	if err != nil {
		t.Fatal(err)
	}
	a, b := testPeer(t), testPeer(t)
	until := t0.Add(time.Minute)
	for i := range 4 {
		if err := w.Add(a, rk(i), until, t0); err != nil {
			t.Fatalf("nonce %d of the share: %v", i, err)
		}
	}
	wantReason(t, w.Add(a, rk(4), until, t0), ReasonReplayCacheFull)
	if w.PeerLen(a) != 4 {
		t.Fatalf("PeerLen(a) = %d, want 4", w.PeerLen(a))
	}
	for i := 100; i < 104; i++ {
		if err := w.Add(b, rk(i), until, t0); err != nil {
			t.Fatalf("another peer refused while a's share is full: %v", err)
		}
	}
	// The whole window still bounds the sum of the shares.
	c := testPeer(t)
	for i := 200; i < 202; i++ {
		if err := w.Add(c, rk(i), until, t0); err != nil {
			t.Fatal(err)
		}
	}
	wantReason(t, w.Add(c, rk(202), until, t0), ReasonReplayCacheFull)
	// Expiry frees the share.
	after := until.Add(time.Nanosecond)
	if err := w.Add(a, rk(5), after.Add(time.Second), after); err != nil {
		t.Fatalf("share not freed by expiry: %v", err)
	}
	if w.PeerLen(a) != 1 || w.PeerLen(b) != 0 || w.Len() != 1 {
		t.Fatalf("after expiry: a %d b %d total %d, want 1 0 1", w.PeerLen(a), w.PeerLen(b), w.Len())
	}
}

// TestReplayWindowRemove: a removed nonce may be added again, frees its share
// at once, and its stale heap entry never drops the re-added one early.
func TestReplayWindowRemove(t *testing.T) {
	w, _ := NewReplayWindow(4, 1)
	p := testPeer(t)
	until := t0.Add(10 * time.Second)
	if err := w.Add(p, rk(1), until, t0); err != nil {
		t.Fatal(err)
	}
	wantReason(t, w.Add(p, rk(2), until, t0), ReasonReplayCacheFull)
	w.Remove(rk(1))
	w.Remove(rk(1)) // twice is harmless
	if w.PeerLen(p) != 0 || w.Len() != 0 {
		t.Fatalf("after Remove: PeerLen %d Len %d", w.PeerLen(p), w.Len())
	}
	if err := w.Add(p, rk(1), until.Add(5*time.Second), t0); err != nil {
		t.Fatalf("removed nonce not accepted again: %v", err)
	}
	// The first (removed) entry's expiry passes; the re-added one is kept.
	w.Expire(until.Add(time.Second))
	wantReason(t, w.Add(p, rk(1), until.Add(5*time.Second), until.Add(time.Second)), ReasonReplayed)
	// Heap stays bounded under reserve/remove churn.
	q := testPeer(t)
	for i := range 100 {
		if err := w.Add(q, rk(1000+i), until, t0); err != nil {
			t.Fatal(err)
		}
		w.Remove(rk(1000 + i))
	}
	if len(w.exp) > 2*w.capacity+1 {
		t.Fatalf("heap grew to %d under churn, capacity %d", len(w.exp), w.capacity)
	}
}
