package audit

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A peer that shows a newer checkpoint but answers the request for a proof
// with something that is no proof is judged: that is evidence. A peer that
// cannot be asked, or refuses, is not judged, and is named after a streak.
func TestWitnessJudgesPeersThatWillNotProve(t *testing.T) {
	pk := testKey(t, 2)
	setup := func(t *testing.T) (*Witness, *Log, []byte, []byte) {
		me, _ := openTest(t, testKey(t, 1), nil)
		honest := newPeerLog(t, pk, 10, "")
		old := honest.note(t)
		if err := me.Witness().Observe(t.Context(), pk.Public(), old, honest.consistency); err != nil {
			t.Fatal(err)
		}
		forked := newPeerLog(t, pk, 12, "-fork")
		return me.Witness(), me, old, forked.note(t)
	}
	wantUnproven := func(t *testing.T, w *Witness, me *Log, err error, old []byte) {
		t.Helper()
		var fe *ForkError
		if !errors.As(err, &fe) || fe.Reason != ReasonUnproven {
			t.Fatalf("Observe: %v, want a *ForkError %q", err, ReasonUnproven)
		}
		if fs, err := w.Forks(t.Context(), pk.Public()); err != nil || len(fs) != 1 || fs[0].Reason != ReasonUnproven {
			t.Fatalf("forks %+v %v", fs, err)
		}
		if es, err := me.List(t.Context(), Filter{Kind: KindFork}); err != nil || len(es) != 1 {
			t.Fatalf("fork entries %v %v", es, err)
		}
		if cp, _, _ := w.Latest(t.Context(), pk.Public()); string(cp.Note) != string(old) {
			t.Fatal("an unproven note replaced the kept one")
		}
	}

	t.Run("malformed proof", func(t *testing.T) {
		w, me, old, bad := setup(t)
		cons := func(context.Context, uint64, uint64) ([][32]byte, error) {
			return nil, fmt.Errorf("%w: hash 0 is not hex", ErrMalformedProof)
		}
		wantUnproven(t, w, me, w.Observe(t.Context(), pk.Public(), bad, cons), old)
	})
	t.Run("refused at its audit stage", func(t *testing.T) {
		// An honest peer refuses on a passing fault of its store, or (an
		// earlier version) for a size below its pruning cut: not evidence,
		// but a streak that names it.
		w, me, _, bad := setup(t)
		cons := func(context.Context, uint64, uint64) ([][32]byte, error) {
			return nil, fmt.Errorf("%w: internal", ErrProofRefused)
		}
		for i := 1; i <= maxUnwitnessed; i++ {
			var nj *NotJudgedError
			if err := w.Observe(t.Context(), pk.Public(), bad, cons); !errors.As(err, &nj) || nj.Failures != i || nj.Alert != (i == maxUnwitnessed) {
				t.Fatalf("refusal %d: %v, want *NotJudgedError (alert at %d)", i, err, maxUnwitnessed)
			}
		}
		if fs, _ := w.Forks(t.Context(), pk.Public()); len(fs) != 0 {
			t.Fatalf("refusals were judged a fork: %+v", fs)
		}
		if es, _ := me.List(t.Context(), Filter{Kind: KindFork}); len(es) != 0 {
			t.Fatalf("fork entries for refusals: %v", es)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		w, me, _, bad := setup(t)
		cons := func(context.Context, uint64, uint64) ([][32]byte, error) {
			return nil, errors.New("dial tcp 127.0.0.1:1: connection refused")
		}
		alerts := 0
		for i := 1; i <= maxUnwitnessed+3; i++ {
			err := w.Observe(t.Context(), pk.Public(), bad, cons)
			var nj *NotJudgedError
			if !errors.As(err, &nj) || nj.Failures != i {
				t.Fatalf("attempt %d: %v, want *NotJudgedError with %d failures", i, err, i)
			}
			if nj.Alert {
				alerts++
				if i != maxUnwitnessed {
					t.Fatalf("alert at failure %d, want at %d", i, maxUnwitnessed)
				}
			}
		}
		if alerts != 1 {
			t.Fatalf("%d alerts, want one per streak", alerts)
		}
		if fs, _ := w.Forks(t.Context(), pk.Public()); len(fs) != 0 {
			t.Fatalf("an unreachable peer was judged: %+v", fs)
		}
		if es, _ := me.List(t.Context(), Filter{Kind: KindFork}); len(es) != 0 {
			t.Fatalf("fork entries for an unreachable peer: %v", es)
		}
	})
	t.Run("a judgement ends the streak", func(t *testing.T) {
		me, _ := openTest(t, testKey(t, 1), nil)
		w := me.Witness()
		honest := newPeerLog(t, pk, 10, "")
		if err := w.Observe(t.Context(), pk.Public(), honest.note(t), honest.consistency); err != nil {
			t.Fatal(err)
		}
		honest.grow(t, 2, "")
		refuse := func(context.Context, uint64, uint64) ([][32]byte, error) {
			return nil, fmt.Errorf("%w: internal", ErrProofRefused)
		}
		for range 2 {
			if err := w.Observe(t.Context(), pk.Public(), honest.note(t), refuse); err == nil {
				t.Fatal("judged without a proof")
			}
		}
		if err := w.Observe(t.Context(), pk.Public(), honest.note(t), honest.consistency); err != nil {
			t.Fatal(err)
		}
		honest.grow(t, 2, "")
		var nj *NotJudgedError
		if err := w.Observe(t.Context(), pk.Public(), honest.note(t), refuse); !errors.As(err, &nj) || nj.Failures != 1 {
			t.Fatalf("after a judgement: %v, want a new streak", err)
		}
	})
}
