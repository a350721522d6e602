package trust

import (
	"path/filepath"
	"testing"
)

// A key rotation hands the old key's trust to the new key, but onto a key
// that already has a record it can only add: a peer holding two keys cannot
// wash one key's quarantine, bad evidence or operator ceiling away by
// rotating its clean key onto it. Only an operator's Lift ends a quarantine.
func TestMoveOntoKnownKeyKeepsItsRecord(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: t0}
	cfg := Config{Now: clk.Now}
	b := openBook(t, cfg, filepath.Join(t.TempDir(), "trust.json"))
	clean, marked, capped := peerID(t, 1), peerID(t, 2), peerID(t, 3)
	for range 30 {
		if _, err := b.Observe(clean, Evidence{Kind: KindSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Observe(marked, Evidence{Kind: KindEquivocation, Detail: "round 7"}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetCeiling(capped, lvl(LevelUntrusted)); err != nil {
		t.Fatal(err)
	}
	cleanBefore := b.Standing(clean, t0)

	if err := b.Move(clean, marked); err != nil {
		t.Fatal(err)
	}
	got := b.Get(marked, t0)
	if !got.Quarantined || got.Level != LevelQuarantined || got.QuarantineCause == nil || got.QuarantineCause.Kind != KindEquivocation {
		t.Fatalf("after rotating onto a quarantined key: %+v, want it still quarantined", got)
	}
	if got.Score >= cleanBefore.Score {
		t.Fatalf("score %v after rotating onto a key with bad evidence, want below the clean key's %v", got.Score, cleanBefore.Score)
	}
	if s := b.Standing(clean, t0); s.Score != cfg.prior() {
		t.Fatalf("old key still has a record: %+v", s)
	}

	// The same peer rotates on, onto a key the operator capped.
	if err := b.Lift(marked); err != nil {
		t.Fatal(err)
	}
	if err := b.Move(marked, capped); err != nil {
		t.Fatal(err)
	}
	if got := b.Get(capped, t0); got.Ceiling == nil || *got.Ceiling != LevelUntrusted || got.Level > LevelUntrusted {
		t.Fatalf("after rotating onto a capped key: %+v, want the ceiling kept", got)
	}

	// Onto a key nobody knows, the record moves whole.
	fresh := peerID(t, 4)
	if err := b.Move(capped, fresh); err != nil {
		t.Fatal(err)
	}
	if got := b.Get(fresh, t0); got.Ceiling == nil || *got.Ceiling != LevelUntrusted {
		t.Fatalf("record not moved whole: %+v", got)
	}
}
