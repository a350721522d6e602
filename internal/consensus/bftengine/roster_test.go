package bftengine

import (
	"slices"
	"testing"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// IDs follow admission, not key order: a member keeps its ID when others
// join or leave, a newcomer gets the next free ID even if its key sorts
// first, and a member added again after its removal gets a new ID (its old
// one still names it in old decisions).
func TestRosterIDsByAdmission(t *testing.T) {
	ks, group := sortedKeys(t, 5)
	r0 := genesisRoster(group(0, ks[1], ks[2], ks[3], ks[4]))
	r1 := r0.then(group(1, ks...), 7) // ks[0] sorts first, joins
	r2 := r1.then(group(2, ks[0], ks[1], ks[3], ks[4]), 9)
	r3 := r2.then(group(3, ks...), 12) // ks[2] is back
	for _, c := range []struct {
		r     *roster
		ids   map[int]uint64 // key position → ID
		nodes []uint64
	}{
		{r0, map[int]uint64{1: 1, 2: 2, 3: 3, 4: 4}, []uint64{1, 2, 3, 4}},
		{r1, map[int]uint64{0: 5, 1: 1, 2: 2, 3: 3, 4: 4}, []uint64{1, 2, 3, 4, 5}},
		{r2, map[int]uint64{0: 5, 1: 1, 3: 3, 4: 4}, []uint64{1, 3, 4, 5}},
		{r3, map[int]uint64{0: 5, 1: 1, 2: 6, 3: 3, 4: 4}, []uint64{1, 3, 4, 5, 6}},
	} {
		if !slices.Equal(c.r.nodes, c.nodes) {
			t.Fatalf("nodes %v, want %v", c.r.nodes, c.nodes)
		}
		for i, id := range c.ids {
			if got := c.r.ids[ks[i]]; got != id {
				t.Fatalf("key %d has ID %d, want %d", i, got, id)
			}
		}
	}
	if k, ok := r3.keys[2]; !ok || !k.Equal(ks[2]) {
		t.Fatal("a re-added member's old ID no longer names it")
	}
	rs := rosters{r0, r1, r2, r3}
	for seq, want := range map[uint64]*roster{1: r0, 6: r0, 7: r1, 8: r1, 9: r2, 11: r2, 12: r3, 99: r3} {
		if rs.at(seq) != want {
			t.Fatalf("roster at %d is the wrong one", seq)
		}
	}
	if r1.leaderOf(0) != 1 || r1.leaderOf(4) != 5 || r2.leaderOf(1) != 3 {
		t.Fatal("leader of a view is not the view's position among the node IDs")
	}
}

// Deliver waits for the apply of a decision that opens a membership motion;
// it finds one by the request's op kind, without decoding.
func TestOpensMembership(t *testing.T) {
	k := bfttestKey(t, 1)
	other := bfttestKey(t, 2).Public()
	g, err := fsm.NewGroup("g", fsm.ModeBFT, 0, []identity.PublicKey{k.Public(), other})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(op fsm.Op) []byte {
		q, err := fsm.SignRequest(k, g.ID(), 1, op)
		if err != nil {
			t.Fatal(err)
		}
		return q.Encode()
	}
	barrier := append(append([]byte(barrierMagic), k.Public().Bytes()...), make([]byte, 16)...)
	plain := [][]byte{enc(fsm.Put("k", nil)), enc(fsm.Vote("#3", true)), barrier, []byte("junk")}
	if opensMembership(plain) {
		t.Fatal("a batch without a membership motion counts as opening one")
	}
	for _, op := range []fsm.Op{fsm.AddMember(other, 0, ""), fsm.RemoveMember(other, 0, "")} {
		if !opensMembership(append(plain, enc(op))) {
			t.Fatalf("%s not seen", op.Kind)
		}
	}
}
