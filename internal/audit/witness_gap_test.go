package audit

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// A peer that pruned past the size kept for it (we were away longer than its
// row retention) cannot prove consistency from that size. Its signed pruning
// record and a proof from the cut let witnessing go on; the interval is
// recorded as not witnessed.
func TestWitnessContinuesAcrossPeersPruning(t *testing.T) {
	ctx := t.Context()
	me, path := openTest(t, testKey(t, 1), nil)
	w := me.Witness()
	pk := testKey(t, 2)
	peer := newPeerLog(t, pk, 10, "")
	kept := peer.note(t)
	if err := w.Observe(ctx, pk.Public(), kept, peer.consistency); err != nil {
		t.Fatal(err)
	}
	peer.grow(t, 15, "")
	if n, err := peer.l.PruneRows(ctx, mustGet(t, peer.l, 20).Time); err != nil || n != 20 {
		t.Fatalf("PruneRows: %d %v", n, err)
	}
	head := peer.note(t)
	if cp := mustCheckpoint(t, peer.l); cp.Size != 26 {
		t.Fatalf("peer head %d, want 26 (25 entries and the pruning record's)", cp.Size)
	}
	if _, err := peer.l.ConsistencyProof(ctx, 10, 26); !errors.Is(err, ErrPruned) {
		t.Fatalf("proof from a pruned size: %v, want ErrPruned", err)
	}
	if err := w.Observe(ctx, pk.Public(), head, peer.consistency); err != nil {
		t.Fatalf("Observe across the peer's pruning: %v", err)
	}
	if cp, _, _ := w.Latest(ctx, pk.Public()); string(cp.Note) != string(head) {
		t.Fatalf("kept size %d, want 26", cp.Size)
	}
	es, err := me.List(ctx, Filter{Kind: KindGap})
	if err != nil || len(es) != 1 || es[0].Peer != pk.Public().String() {
		t.Fatalf("gap entries %v %v", es, err)
	}
	var ev gapEvidence
	if err := json.Unmarshal(es[0].Evidence, &ev); err != nil || ev.From != 10 || ev.To != 20 || ev.Old != string(kept) || ev.New != string(head) {
		t.Fatalf("gap evidence %s (%v)", es[0].Evidence, err)
	}
	if _, err := openPruneRecord([]byte(ev.Record), pk.Public(), OriginFor(pk.Public())); err != nil {
		t.Fatalf("the kept pruning record does not verify: %v", err)
	}
	if fs, _ := w.Forks(ctx, pk.Public()); len(fs) != 0 {
		t.Fatalf("an honest pruning judged a fork: %+v", fs)
	}
	// Witnessing goes on as before.
	peer.grow(t, 3, "")
	if err := w.Observe(ctx, pk.Public(), peer.note(t), peer.consistency); err != nil {
		t.Fatalf("after the gap: %v", err)
	}
	if cp, _, _ := w.Latest(ctx, pk.Public()); cp.Size != 29 {
		t.Fatalf("kept size %d, want 29", cp.Size)
	}
	if err := me.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, path, testKey(t, 1).Public()); err != nil {
		t.Fatal(err)
	}
}

// A pruning record is no licence to fork: it must be the peer's, cover the
// kept size, and be consistent with the new checkpoint.
func TestWitnessGapAdversarial(t *testing.T) {
	pk := testKey(t, 2)
	// pruned returns a peer log pruned below 20 at head 26, and its record.
	pruned := func(t *testing.T, salt string) (peerLog, *PrunedError) {
		p := newPeerLog(t, pk, 25, salt)
		if _, err := p.l.PruneRows(t.Context(), mustGet(t, p.l, 20).Time); err != nil {
			t.Fatal(err)
		}
		_, err := p.l.ConsistencyProof(t.Context(), 10, 26)
		var pe *PrunedError
		if !errors.As(err, &pe) {
			t.Fatalf("ConsistencyProof: %v, want *PrunedError", err)
		}
		return p, pe
	}
	for _, tc := range []struct {
		name   string
		reason string
		answer func(t *testing.T) ([]byte, ConsistencyFunc)
	}{
		{"record signed by another key", ReasonUnproven, func(t *testing.T) ([]byte, ConsistencyFunc) {
			p, pe := pruned(t, "")
			other, _ := openTest(t, testKey(t, 3), nil)
			appendN(t, other, 0, 25)
			if _, err := other.PruneRows(t.Context(), mustGet(t, other, 20).Time); err != nil {
				t.Fatal(err)
			}
			_, oerr := other.ConsistencyProof(t.Context(), 10, 26)
			var ope *PrunedError
			if !errors.As(oerr, &ope) {
				t.Fatal(oerr)
			}
			return p.note(t), func(context.Context, uint64, uint64) ([][32]byte, error) {
				return nil, &PrunedError{Record: ope.Record, Proof: pe.Proof}
			}
		}},
		{"oversized record", ReasonUnproven, func(t *testing.T) ([]byte, ConsistencyFunc) {
			p, pe := pruned(t, "")
			big := &PrunedError{Record: append(append([]byte(nil), pe.Record...), make([]byte, MaxNoteSize)...), Proof: pe.Proof}
			return p.note(t), func(context.Context, uint64, uint64) ([][32]byte, error) { return nil, big }
		}},
		{"garbage record", ReasonUnproven, func(t *testing.T) ([]byte, ConsistencyFunc) {
			p, pe := pruned(t, "")
			return p.note(t), func(context.Context, uint64, uint64) ([][32]byte, error) {
				return nil, &PrunedError{Record: []byte("prune\n\n— x AAAA\n"), Proof: pe.Proof}
			}
		}},
		{"record that keeps the kept size", ReasonUnproven, func(t *testing.T) ([]byte, ConsistencyFunc) {
			p := newPeerLog(t, pk, 25, "")
			if _, err := p.l.PruneRows(t.Context(), mustGet(t, p.l, 5).Time); err != nil {
				t.Fatal(err)
			}
			_, err := p.l.ConsistencyProof(t.Context(), 3, 26)
			var pe *PrunedError
			if !errors.As(err, &pe) {
				t.Fatal(err)
			}
			return p.note(t), func(context.Context, uint64, uint64) ([][32]byte, error) { return nil, pe }
		}},
		{"history rewritten after the cut", ReasonPruneInconsistent, func(t *testing.T) ([]byte, ConsistencyFunc) {
			_, pe := pruned(t, "")
			forked := newPeerLog(t, pk, 26, "-fork")
			return forked.note(t), func(context.Context, uint64, uint64) ([][32]byte, error) { return nil, pe }
		}},
		{"damaged proof from the cut", ReasonPruneInconsistent, func(t *testing.T) ([]byte, ConsistencyFunc) {
			p, pe := pruned(t, "")
			bad := &PrunedError{Record: pe.Record, Proof: append([][32]byte(nil), pe.Proof...)}
			bad.Proof[0][0] ^= 1
			return p.note(t), func(context.Context, uint64, uint64) ([][32]byte, error) { return nil, bad }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			me, _ := openTest(t, testKey(t, 1), nil)
			w := me.Witness()
			start := newPeerLog(t, pk, 10, "")
			old := start.note(t)
			if err := w.Observe(ctx, pk.Public(), old, start.consistency); err != nil {
				t.Fatal(err)
			}
			note, cons := tc.answer(t)
			var fe *ForkError
			if err := w.Observe(ctx, pk.Public(), note, cons); !errors.As(err, &fe) || fe.Reason != tc.reason {
				t.Fatalf("Observe: %v, want a *ForkError %q", err, tc.reason)
			}
			if cp, _, _ := w.Latest(ctx, pk.Public()); string(cp.Note) != string(old) {
				t.Fatal("the kept note moved")
			}
			if es, _ := me.List(ctx, Filter{Kind: KindGap}); len(es) != 0 {
				t.Fatalf("a gap was recorded: %v", es)
			}
		})
	}
}

// Gaps a peer can cause are bounded like forks: past the bound the note is
// not judged (and the kept one does not move), so no gap goes unrecorded.
func TestWitnessBoundsGapsPerPeer(t *testing.T) {
	ctx := t.Context()
	clock := newStepClock()
	me, _ := openTest(t, testKey(t, 1), func(c *Config) { c.Now = clock.Now })
	w := me.Witness()
	pk := testKey(t, 2)
	peer := newPeerLog(t, pk, 2, "")
	if err := w.Observe(ctx, pk.Public(), peer.note(t), peer.consistency); err != nil {
		t.Fatal(err)
	}
	for i := range maxForksPerPeer + 1 {
		peer.grow(t, 3, "")
		size := mustCheckpoint(t, peer.l).Size
		if _, err := peer.l.PruneRows(ctx, mustGet(t, peer.l, int(size)-1).Time); err != nil {
			t.Fatal(err)
		}
		err := w.Observe(ctx, pk.Public(), peer.note(t), peer.consistency)
		if i < maxForksPerPeer {
			if err != nil {
				t.Fatalf("gap %d: %v", i, err)
			}
			continue
		}
		var nj *NotJudgedError
		if !errors.As(err, &nj) {
			t.Fatalf("gap past the bound: %v, want *NotJudgedError", err)
		}
	}
	if es, _ := me.List(ctx, Filter{Kind: KindGap}); len(es) != maxForksPerPeer {
		t.Fatalf("%d gap entries, want %d", len(es), maxForksPerPeer)
	}
}
