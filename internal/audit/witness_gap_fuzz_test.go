package audit

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// FuzzWitnessGap answers the witness's request from a pruned size with
// arbitrary pruning-record text (signed as the peer, so the judgement is
// reached) and an arbitrary proof from the cut. The kept checkpoint may move
// only to the new note, only along a record that cuts above the kept size and
// a proof that takes the record's root to the new one, and only with an
// audit.gap entry.
func FuzzWitnessGap(f *testing.F) {
	k, s := fuzzPeer(f)
	dir := f.TempDir()
	ctx := context.Background()
	peer, err := Open(ctx, Config{Path: filepath.Join(dir, "peer.db"), Identity: k, Now: newStepClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	defer peer.Close()
	appendN(f, peer, 0, 10)
	base := mustCheckpoint2(f, peer)
	appendN(f, peer, 10, 15)
	if _, err := peer.PruneRows(ctx, mustGet(f, peer, 20).Time); err != nil {
		f.Fatal(err)
	}
	head := mustCheckpoint2(f, peer)
	_, perr := peer.ConsistencyProof(ctx, base.Size, head.Size)
	var honest *PrunedError
	if !errors.As(perr, &honest) {
		f.Fatalf("ConsistencyProof: %v", perr)
	}
	text := func(n []byte) []byte { i := strings.Index(string(n), "\n\n"); return n[:i+1] }
	var proof []byte
	for _, h := range honest.Proof {
		proof = append(proof, h[:]...)
	}
	f.Add(text(honest.Record), proof)                // honest
	f.Add(text(honest.Record), append(proof[1:], 0)) // damaged proof
	f.Add(text(honest.Record), []byte{})             // no proof
	f.Add([]byte(strings.Replace(string(text(honest.Record)), "rows 20", "rows 9", 1)), proof)

	me, err := Open(ctx, Config{Path: filepath.Join(dir, "me.db"), Identity: testKey(f, 1), Now: newStepClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	defer me.Close()
	w := me.Witness()

	f.Fuzz(func(t *testing.T, txt, proof []byte) {
		if err := w.keep(ctx, k.Public(), base); err != nil {
			t.Fatal(err)
		}
		gapsBefore, err := me.List(ctx, Filter{Kind: KindGap})
		if err != nil {
			t.Fatal(err)
		}
		msg, ok := signText(s, txt)
		if !ok {
			msg = txt
		}
		var hashes [][32]byte
		for b := proof; len(b) >= 32; b = b[32:] {
			hashes = append(hashes, [32]byte(b[:32]))
		}
		cons := func(context.Context, uint64, uint64) ([][32]byte, error) {
			return nil, &PrunedError{Record: msg, Proof: hashes}
		}
		err = w.Observe(ctx, k.Public(), head.Note, cons)
		kept, _, lerr := w.Latest(ctx, k.Public())
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err != nil || string(kept.Note) == string(base.Note) {
			if string(kept.Note) != string(base.Note) {
				t.Fatalf("kept moved on %v", err)
			}
			return
		}
		if string(kept.Note) != string(head.Note) {
			t.Fatal("kept a note that was not presented")
		}
		pr, rerr := openPruneRecord(msg, k.Public(), OriginFor(k.Public()))
		if rerr != nil || pr.Rows <= base.Size || pr.Rows > head.Size {
			t.Fatalf("kept across a record that is not valid here: %v (rows %d)", rerr, pr.Rows)
		}
		tp := make(tlog.TreeProof, len(hashes))
		for i, h := range hashes {
			tp[i] = h
		}
		if tlog.CheckTree(tp, int64(head.Size), head.Root, int64(pr.Rows), pr.Root) != nil {
			t.Fatal("kept without a proof from the cut")
		}
		if gaps, _ := me.List(ctx, Filter{Kind: KindGap}); len(gaps) != len(gapsBefore)+1 {
			t.Fatalf("kept with %d gap entries, had %d", len(gaps), len(gapsBefore))
		}
	})
}
