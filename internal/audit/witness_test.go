package audit

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// peerLog is a peer's log: the real one, or a fork made with the same key.
type peerLog struct {
	l *Log
}

func newPeerLog(t *testing.T, key identity.PrivateKey, entries int, salt string) peerLog {
	t.Helper()
	l, _ := openTest(t, key, nil)
	for i := range entries {
		e := sampleEntry(i)
		e.Capability += salt
		if _, err := l.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	return peerLog{l: l}
}

func (p peerLog) grow(t *testing.T, n int, salt string) {
	t.Helper()
	cp := mustCheckpoint(t, p.l)
	for i := range n {
		e := sampleEntry(int(cp.Size) + i)
		e.Capability += salt
		if _, err := p.l.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func (p peerLog) note(t *testing.T) []byte { return mustCheckpoint(t, p.l).Note }

func (p peerLog) consistency(ctx context.Context, o, n uint64) ([][32]byte, error) {
	return p.l.ConsistencyProof(ctx, o, n)
}

func TestWitnessAcceptsGrowthAndStale(t *testing.T) {
	me, _ := openTest(t, testKey(t, 1), nil)
	w := me.Witness()
	pk := testKey(t, 2)
	peer := newPeerLog(t, pk, 5, "")
	ctx := t.Context()

	old := peer.note(t)
	if err := w.Observe(ctx, pk.Public(), old, nil); err != nil {
		t.Fatalf("first note: %v", err)
	}
	peer.grow(t, 6, "")
	if err := w.Observe(ctx, pk.Public(), peer.note(t), peer.consistency); err != nil {
		t.Fatalf("newer note: %v", err)
	}
	if cp, ok, _ := w.Latest(ctx, pk.Public()); !ok || cp.Size != 11 {
		t.Fatalf("latest %d %v", cp.Size, ok)
	}
	// An older note arriving late (calls answered out of order) is not a fork.
	if err := w.Observe(ctx, pk.Public(), old, peer.consistency); err != nil {
		t.Fatalf("stale note: %v", err)
	}
	if cp, _, _ := w.Latest(ctx, pk.Public()); cp.Size != 11 {
		t.Fatalf("stale note replaced the latest: %d", cp.Size)
	}
	// The same note again is fine.
	if err := w.Observe(ctx, pk.Public(), peer.note(t), peer.consistency); err != nil {
		t.Fatal(err)
	}
	// A newer note with no way to ask for a proof decides nothing.
	peer.grow(t, 1, "")
	if err := w.Observe(ctx, pk.Public(), peer.note(t), nil); err == nil {
		t.Fatal("accepted a newer note without a consistency proof")
	}
	if cp, _, _ := w.Latest(ctx, pk.Public()); cp.Size != 11 {
		t.Fatalf("latest moved without a proof: %d", cp.Size)
	}
	// The peer being unreachable is an error, not a fork.
	unreachable := func(context.Context, uint64, uint64) ([][32]byte, error) { return nil, errors.New("dial: refused") }
	err := w.Observe(ctx, pk.Public(), peer.note(t), unreachable)
	var fe *ForkError
	if err == nil || errors.As(err, &fe) {
		t.Fatalf("unreachable peer: %v", err)
	}
	if fs, _ := w.Forks(ctx, identity.PublicKey{}); len(fs) != 0 {
		t.Fatalf("forks recorded: %v", fs)
	}
}

func TestWitnessDetectsForks(t *testing.T) {
	pk := testKey(t, 2)
	for _, tc := range []struct {
		name   string
		reason string
		// present returns the conflicting note and the consistency function
		// that the (lying) peer offers, given the honest peer at size 10.
		present func(t *testing.T) ([]byte, ConsistencyFunc)
	}{
		{"same size different root", "same size, different root", func(t *testing.T) ([]byte, ConsistencyFunc) {
			f := newPeerLog(t, pk, 10, "-fork")
			return f.note(t), f.consistency
		}},
		{"rollback admitted", "rollback", func(t *testing.T) ([]byte, ConsistencyFunc) {
			f := newPeerLog(t, pk, 7, "-fork") // its log is smaller than 10
			return f.note(t), f.consistency
		}},
		{"rollback without a proof channel", "rollback", func(t *testing.T) ([]byte, ConsistencyFunc) {
			f := newPeerLog(t, pk, 7, "-fork")
			return f.note(t), nil
		}},
		{"rollback with a bogus proof", "rollback", func(t *testing.T) ([]byte, ConsistencyFunc) {
			f := newPeerLog(t, pk, 7, "-fork")
			return f.note(t), func(context.Context, uint64, uint64) ([][32]byte, error) { return [][32]byte{{1}, {2}}, nil }
		}},
		{"history rewritten then grown", "inconsistent", func(t *testing.T) ([]byte, ConsistencyFunc) {
			f := newPeerLog(t, pk, 12, "-fork")
			return f.note(t), f.consistency
		}},
		{"honest history, lying proof", "inconsistent", func(t *testing.T) ([]byte, ConsistencyFunc) {
			f := newPeerLog(t, pk, 12, "") // same first 10 entries...
			return f.note(t), func(ctx context.Context, o, n uint64) ([][32]byte, error) {
				p, err := f.consistency(ctx, o, n)
				if len(p) > 0 {
					p[0][0] ^= 1 // ...but a damaged proof
				}
				return p, err
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(t, 1)
			me, path := openTest(t, key, nil)
			w := me.Witness()
			ctx := t.Context()
			honest := newPeerLog(t, pk, 10, "")
			old := honest.note(t)
			if err := w.Observe(ctx, pk.Public(), old, honest.consistency); err != nil {
				t.Fatal(err)
			}
			bad, cons := tc.present(t)
			err := w.Observe(ctx, pk.Public(), bad, cons)
			var fe *ForkError
			if !errors.As(err, &fe) {
				t.Fatalf("Observe: %v, want *ForkError", err)
			}
			if fe.Reason != tc.reason || fe.Peer != pk.Public() || string(fe.Old) != string(old) || string(fe.New) != string(bad) {
				t.Fatalf("fork error %+v", fe)
			}
			// Both signed notes are kept, and each still verifies with the peer's key.
			fs, err := w.Forks(ctx, pk.Public())
			if err != nil || len(fs) != 1 {
				t.Fatalf("forks %v %v", fs, err)
			}
			for _, n := range [][]byte{fs[0].Old, fs[0].New} {
				if _, err := OpenCheckpoint(n, pk.Public()); err != nil {
					t.Fatalf("kept evidence does not verify: %v", err)
				}
			}
			// The kept checkpoint did not move.
			if cp, _, _ := w.Latest(ctx, pk.Public()); string(cp.Note) != string(old) {
				t.Fatal("a conflicting note replaced the kept one")
			}
			// The fork is in my own log, as evidence.
			es, err := me.List(ctx, Filter{Kind: KindFork})
			if err != nil || len(es) != 1 || es[0].Peer != pk.Public().String() || es[0].Index != fs[0].Entry {
				t.Fatalf("fork entries %v %v", es, err)
			}
			var ev forkEvidence
			if err := json.Unmarshal(es[0].Evidence, &ev); err != nil || ev.Old != string(old) || ev.New != string(bad) || ev.Reason != tc.reason {
				t.Fatalf("evidence %s", es[0].Evidence)
			}
			// Seeing the same conflict again alerts again but records once.
			if err := w.Observe(ctx, pk.Public(), bad, cons); !errors.As(err, &fe) {
				t.Fatalf("second time: %v", err)
			}
			if fs, _ := w.Forks(ctx, pk.Public()); len(fs) != 1 {
				t.Fatalf("%d forks after a repeat", len(fs))
			}
			if err := me.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(ctx, path, key.Public()); err != nil {
				t.Fatalf("my log after recording a fork: %v", err)
			}
		})
	}
}

func TestWitnessRejectsBadNotes(t *testing.T) {
	me, _ := openTest(t, testKey(t, 1), nil)
	w := me.Witness()
	ctx := t.Context()
	pk := testKey(t, 2)
	honest := newPeerLog(t, pk, 3, "")
	impostor := newPeerLog(t, testKey(t, 3), 3, "")
	evilOrigin, _ := openTest(t, pk, func(c *Config) { c.Origin = "evil/log" })
	if _, err := evilOrigin.Append(ctx, sampleEntry(0)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		note []byte
		want error
	}{
		{"signed by another key", impostor.note(t), ErrBadSignature},
		{"right key, foreign origin", mustCheckpoint(t, evilOrigin).Note, ErrBadNote},
		{"garbage", []byte("hello\n\n— x AAAA\n"), ErrBadNote},
		{"empty", nil, ErrBadNote},
		{"too large", make([]byte, MaxNoteSize+1), ErrBadNote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := w.Observe(ctx, pk.Public(), tc.note, honest.consistency)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, ok, _ := w.Latest(ctx, pk.Public()); ok {
				t.Fatal("a rejected note was kept")
			}
		})
	}
}

// A peer can sign any number of conflicting checkpoints. Fork records go in
// even over the high-water mark, so the ones kept per peer are bounded: more
// evidence of the same misbehaviour would only let the peer fill the disk.
func TestWitnessBoundsForksPerPeer(t *testing.T) {
	clock := newStepClock()
	var later atomic.Int64 // added to the clock
	me, path := openTest(t, testKey(t, 1), func(c *Config) {
		c.Now = func() time.Time { return clock.Now().Add(time.Duration(later.Load())) }
	})
	w := me.Witness()
	ctx := t.Context()
	pk := testKey(t, 2)
	honest := newPeerLog(t, pk, 10, "")
	if err := w.Observe(ctx, pk.Public(), honest.note(t), honest.consistency); err != nil {
		t.Fatal(err)
	}
	liar, err := newNoteSigner(OriginFor(pk.Public()), pk)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxForksPerPeer + 5 {
		cp, err := liar.checkpoint(10, [32]byte{byte(i), 0xf0})
		if err != nil {
			t.Fatal(err)
		}
		var fe *ForkError
		if err := w.Observe(ctx, pk.Public(), cp.Note, honest.consistency); !errors.As(err, &fe) {
			t.Fatalf("conflict %d: %v, want *ForkError (every one is still reported)", i, err)
		}
	}
	if fs, err := w.Forks(ctx, pk.Public()); err != nil || len(fs) != maxForksPerPeer {
		t.Fatalf("%d forks kept (%v), want %d", len(fs), err, maxForksPerPeer)
	}
	if es, err := me.List(ctx, Filter{Kind: KindFork}); err != nil || len(es) != maxForksPerPeer {
		t.Fatalf("%d fork entries (%v), want %d", len(es), err, maxForksPerPeer)
	}
	// The bound is per peer: another peer's first fork is still recorded.
	pk2 := testKey(t, 3)
	other := newPeerLog(t, pk2, 4, "")
	if err := w.Observe(ctx, pk2.Public(), other.note(t), other.consistency); err != nil {
		t.Fatal(err)
	}
	liar2, _ := newNoteSigner(OriginFor(pk2.Public()), pk2)
	cp, _ := liar2.checkpoint(4, [32]byte{9})
	var fe *ForkError
	if err := w.Observe(ctx, pk2.Public(), cp.Note, other.consistency); !errors.As(err, &fe) {
		t.Fatalf("other peer: %v", err)
	}
	if fs, _ := w.Forks(ctx, pk2.Public()); len(fs) != 1 {
		t.Fatalf("other peer: %d forks kept, want 1", len(fs))
	}
	// A day later (a lifted quarantine, a new incident) a conflict is kept again.
	later.Store(int64(forkWindow + time.Minute))
	cp, _ = liar.checkpoint(10, [32]byte{0xee})
	if err := w.Observe(ctx, pk.Public(), cp.Note, honest.consistency); !errors.As(err, &fe) {
		t.Fatalf("a day later: %v", err)
	}
	if fs, _ := w.Forks(ctx, pk.Public()); len(fs) != maxForksPerPeer+1 {
		t.Fatalf("a day later: %d forks kept, want %d", len(fs), maxForksPerPeer+1)
	}
	if err := me.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, path, testKey(t, 1).Public()); err != nil {
		t.Fatal(err)
	}
}
