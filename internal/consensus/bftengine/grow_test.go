package bftengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/bftengine/bfttest"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// The growth tests run five nodes on the real-TLS cluster: the group is
// founded by nodes 1-4 (positions in the sorted keys) and node 0, whose key
// sorts first, is added by motion. It gets node ID 5 (admission order), so
// no founder's ID moves although its key sorts before theirs.
var (
	founders = []int{1, 2, 3, 4}
	joiner   = 0
	grown    = []int{0, 1, 2, 3, 4}
)

func newGrowHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOf(t, bfttest.NewClusterOf(t, "reviews", 5, founders))
}

func (h *harness) proposeOp(via int, op fsm.Op, within time.Duration) consensus.Applied {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	a, err := h.engines[via].ProposeOp(ctx, op)
	if err != nil {
		h.t.Fatalf("propose via member %d: %v", via+1, err)
	}
	if !a.Result.OK() {
		h.t.Fatalf("propose via member %d: %v", via+1, a.Result.Err())
	}
	return a
}

// admit adds the joiner by a motion of the running founders (voters vote
// yes) and waits until every running founder reached epoch 1.
func (h *harness) admit(voters []int) consensus.Applied {
	h.t.Helper()
	open := h.proposeOp(voters[0], fsm.AddMember(h.c.Keys[joiner].Public(), 0, "welcome"), 30*time.Second)
	var last consensus.Applied
	for _, i := range voters {
		last = h.proposeOp(i, fsm.Vote(open.Result.Motion, true), 30*time.Second)
	}
	if last.Result.Outcome != fsm.OutcomePassed {
		h.t.Fatalf("add motion after %d yes votes: %+v", len(voters), last.Result)
	}
	for _, i := range founders {
		if h.engines[i] == nil {
			continue
		}
		waitFor(h.t, 10*time.Second, fmt.Sprintf("epoch 1 on member %d", i+1), func() bool { return h.engines[i].currentGroup().Epoch == 1 })
	}
	return last
}

// join starts the joiner from the epoch-0 definition and waits until it
// has caught up far enough to be listed and run SmartBFT.
func (h *harness) join() {
	h.t.Helper()
	h.start(joiner)
	waitFor(h.t, 30*time.Second, "the joiner to catch up and run SmartBFT", func() bool { return h.engines[joiner].cons() != nil })
}

// grow is admit, then join.
func (h *harness) grow(voters []int) consensus.Applied {
	h.t.Helper()
	a := h.admit(voters)
	h.join()
	return a
}

func (h *harness) sameState(members []int, index uint64) {
	h.t.Helper()
	h.waitIndex(members, index, 20*time.Second)
	// Wait for the same index everywhere before comparing digests: a member
	// may have applied more meanwhile.
	waitFor(h.t, 20*time.Second, "one state on every member", func() bool {
		d := h.digest(members[0])
		for _, i := range members[1:] {
			if h.digest(i) != d {
				return false
			}
		}
		return true
	})
}

// Acceptance: four founders add a fifth member by motion; started from the
// epoch-0 definition it catches up (verifying every decision against the
// node set in force at its sequence) to the same state, proposes, every
// member applies its request, and all five applied the same entry at every
// index. Records on both sides of the change verify offline.
func TestGrowAFifthMember(t *testing.T) {
	h := newGrowHarness(t)
	for _, i := range founders {
		h.start(i)
	}
	before := h.proposeOp(1, fsm.Put("before", []byte("v")), 30*time.Second)
	passed := h.admit([]int{1, 2, 3})
	// Decided by the five-node set (quorum 4: every founder) before the
	// joiner runs; it must fetch this one too.
	for _, i := range founders {
		if n := len(h.engines[i].roster().nodes); n != 5 {
			t.Fatalf("founder %d runs %d nodes after the change, want 5", i+1, n)
		}
	}
	during := h.proposeOp(2, fsm.Put("during", []byte("v")), 30*time.Second)
	h.join()
	h.waitIndex([]int{joiner}, during.Index, 20*time.Second)

	j := h.engines[joiner]
	if id := j.self.Load(); id != 5 {
		t.Fatalf("joiner has node ID %d, want 5 (admission order)", id)
	}
	for n, i := range founders {
		if id := h.engines[i].self.Load(); id != uint64(n+1) {
			t.Fatalf("founder %d has node ID %d after the change, want %d", i+1, id, n+1)
		}
	}
	if g := j.currentGroup(); g.Epoch != 1 || g.N() != 5 {
		t.Fatalf("joiner reached %s, want epoch 1 with 5 members", g)
	}

	a := h.proposeOp(joiner, fsm.Put("from-the-joiner", []byte("hello")), 30*time.Second)
	h.sameState(grown, a.Index)
	for _, i := range grown {
		var it fsm.Item
		var ok bool
		ctx, cancel := contextWithin(20 * time.Second)
		err := h.engines[i].Read(ctx, func(m *fsm.Machine) { it, ok = m.Get("from-the-joiner") })
		cancel()
		if err != nil || !ok || string(it.Value) != "hello" {
			t.Fatalf("member %d does not hold the joiner's value: %v %v %q", i+1, err, ok, it.Value)
		}
	}
	h.applied.check(t, grown)
	for idx := uint64(1); idx <= a.Index; idx++ {
		if n := h.applied.members(idx); n != 5 {
			t.Fatalf("index %d was reported applied by %d members, want 5", idx, n)
		}
	}

	// Records verify offline with the definition in force at their index:
	// epoch 0 (four members) before, epoch 1 (five) after, from any member.
	for _, c := range []struct {
		index  uint64
		via    int
		epoch  uint64
		n      int
		signer bool // the joiner may sign the certificate
	}{
		{before.Index, joiner, 0, 4, false},
		{passed.Index, 3, 0, 4, false},
		{a.Index, 2, 1, 5, true},
		{a.Index, joiner, 1, 5, true},
	} {
		ctx, cancel := contextWithin(20 * time.Second)
		r, err := h.engines[c.via].Record(ctx, c.index)
		cancel()
		if err != nil {
			t.Fatalf("record %d via member %d: %v", c.index, c.via+1, err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := fsm.ParseRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := fsm.Verify(parsed); err != nil {
			t.Fatalf("record %d via member %d: %v", c.index, c.via+1, err)
		}
		if g := parsed.Group; g.Epoch != c.epoch || len(g.Members) != c.n {
			t.Fatalf("record %d names epoch %d with %d members, want %d with %d", c.index, g.Epoch, len(g.Members), c.epoch, c.n)
		}
	}
}

// A grown group of five tolerates one lying member (f = 1): the founder
// that leads after the change starts equivocating, and the other four (the
// joiner among them, as quorum is 4) replace it and keep deciding.
func TestGrownGroupSurvivesAByzantineMember(t *testing.T) {
	h := newGrowHarness(t)
	var lying atomic.Int64 // position of the maverick, -1: nobody lies
	lying.Store(-1)
	for _, i := range founders {
		mv := newMaverick(h, i)
		h.opts[i].tamperSend = func(to uint64, b []byte) [][]byte {
			if lying.Load() == int64(i) {
				return mv.equivocate(to, b)
			}
			return [][]byte{b}
		}
		h.start(i)
	}
	h.grow([]int{1, 2, 3})
	h.proposeOp(joiner, fsm.Put("grown", []byte("v")), 30*time.Second)
	leader := h.engines[joiner].Status().Leader
	bad := -1
	for _, i := range founders {
		if h.c.Keys[i].Public().Equal(leader) {
			bad = i
		}
	}
	if bad < 0 {
		t.Fatalf("leader %s is not a founder", leader.Short())
	}
	lying.Store(int64(bad))
	var honest []int
	for _, i := range grown {
		if i != bad {
			honest = append(honest, i)
		}
	}
	var last uint64
	for k := range 4 {
		via := honest[k%len(honest)]
		last = h.proposeOp(via, fsm.Put(fmt.Sprintf("k%d", k), []byte("v")), 60*time.Second).Index
	}
	h.sameState(honest, last)
	h.applied.check(t, honest)
	if l := h.engines[joiner].Status().Leader; l.Equal(h.c.Keys[bad].Public()) {
		t.Fatal("the equivocating member still leads")
	}
	waitFor(t, 10*time.Second, "evidence of equivocation against the maverick", func() bool {
		for _, i := range honest {
			if h.ev[i].has(h.c.Keys[bad].Public(), "equivocation") {
				return true
			}
		}
		return false
	})
}

// After growth, a silent member (stopped) still leaves a quorum of four:
// the group keeps deciding, and the joiner and a founder restarted from the
// epoch-0 definition replay into epoch 1 under the same node IDs and take
// part again.
func TestRestartAfterGrowth(t *testing.T) {
	h := newGrowHarness(t)
	for _, i := range founders {
		h.start(i)
	}
	h.grow([]int{1, 2, 3})
	h.proposeOp(joiner, fsm.Put("a", []byte("1")), 30*time.Second)

	h.stop(1) // node ID 1, the leader of view 0: silent from now on
	alive := []int{0, 2, 3, 4}
	a := h.proposeOp(joiner, fsm.Put("b", []byte("2")), 60*time.Second)
	h.sameState(alive, a.Index)

	h.stop(joiner)
	h.stop(3)
	h.start(1)
	h.start(3)
	h.start(joiner)
	for _, i := range []int{joiner, 1, 3} {
		e := h.engines[i]
		if g := e.currentGroup(); g.Epoch != 1 || g.N() != 5 {
			t.Fatalf("member %d restarted at %s, want epoch 1 with 5 members", i+1, g)
		}
		if e.cons() == nil {
			t.Fatalf("member %d restarted as a learner", i+1)
		}
	}
	if id := h.engines[joiner].self.Load(); id != 5 {
		t.Fatalf("restarted joiner has node ID %d, want 5", id)
	}
	b := h.proposeOp(joiner, fsm.Put("c", []byte("3")), 60*time.Second)
	c := h.proposeOp(1, fsm.Put("d", []byte("4")), 60*time.Second)
	h.sameState(grown, max(b.Index, c.Index))
	h.applied.check(t, grown)
}

// A node the group did not add learns nothing: the members do not link it,
// so it gets no decision, cannot propose, and the group runs on without it.
func TestNotAdmittedCannotJoin(t *testing.T) {
	h := newGrowHarness(t)
	for _, i := range founders {
		h.start(i)
	}
	a := h.proposeOp(1, fsm.Put("a", []byte("1")), 30*time.Second)
	out := h.start(joiner)
	if out.cons() != nil || out.self.Load() != 0 {
		t.Fatal("a node outside the definition runs SmartBFT")
	}
	ctx, cancel := contextWithin(5 * time.Second)
	defer cancel()
	if _, err := out.ProposeOp(ctx, fsm.Put("intruder", nil)); !errors.Is(err, consensus.ErrNotMember) {
		t.Fatalf("propose by a node not admitted: %v, want ErrNotMember", err)
	}
	// The founders keep deciding; the outsider stays at nothing for as
	// long as that takes.
	for k := range 3 {
		a = h.proposeOp(2+k%3, fsm.Put(fmt.Sprintf("k%d", k), []byte("v")), 30*time.Second)
	}
	h.sameState(founders, a.Index)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if out.lastIdx.Load() != 0 || out.cons() != nil {
			t.Fatalf("the outsider reached index %d", out.lastIdx.Load())
		}
		waitTick()
	}
	for _, i := range founders {
		if h.engines[i].comm.linkOf(h.c.Keys[joiner].Public()) != nil {
			t.Fatalf("founder %d links the outsider", i+1)
		}
	}
}

// A founder that was down while the group grew catches up through state
// transfer across the change (its Synchronizer reports the new node set to
// SmartBFT) and takes part in the five-node group.
func TestFounderOfflineDuringGrowthCatchesUp(t *testing.T) {
	h := newGrowHarness(t)
	for _, i := range founders {
		h.start(i)
	}
	h.proposeOp(1, fsm.Put("a", []byte("1")), 30*time.Second)
	h.stop(4)
	h.grow([]int{1, 2, 3})
	a := h.proposeOp(joiner, fsm.Put("b", []byte("2")), 60*time.Second)
	h.start(4)
	waitFor(t, 30*time.Second, "the late founder to reach epoch 1", func() bool { return h.engines[4].currentGroup().Epoch == 1 })
	if r := h.engines[4].roster(); len(r.nodes) != 5 {
		t.Fatalf("late founder's node set %v, want five nodes", r.nodes)
	}
	b := h.proposeOp(4, fsm.Put("c", []byte("3")), 60*time.Second)
	h.sameState(grown, max(a.Index, b.Index))
	h.applied.check(t, grown)
}

// Removal shrinks SmartBFT's node set too: once member 4 of 4 is removed
// the group is three nodes with quorum 2, so it keeps deciding with the
// removed member gone and one more member silent (before, the removed
// member still counted in n and the same loss stopped the group).
func TestRemovalShrinksTheNodeSet(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	open := h.proposeOp(0, fsm.RemoveMember(h.c.Keys[3].Public(), 0, "left"), 30*time.Second)
	for _, i := range []int{0, 1, 2} {
		h.proposeOp(i, fsm.Vote(open.Result.Motion, true), 30*time.Second)
	}
	for _, i := range []int{0, 1, 2} {
		waitFor(t, 30*time.Second, fmt.Sprintf("three nodes on member %d", i+1), func() bool { return len(h.engines[i].roster().nodes) == 3 })
	}
	waitFor(t, 30*time.Second, "the removed member to leave SmartBFT", func() bool { return h.engines[3].self.Load() == 0 })
	if _, err := h.engines[3].ProposeOp(context.Background(), fsm.Put("x", nil)); !errors.Is(err, consensus.ErrNotMember) {
		t.Fatalf("propose by the removed member: %v, want ErrNotMember", err)
	}
	h.stop(3)
	h.stop(2) // node 3: not the leader of view 0
	a := h.proposeOp(1, fsm.Put("two-of-three", []byte("v")), 30*time.Second)
	h.sameState([]int{0, 1}, a.Index)
	h.applied.check(t, []int{0, 1})
}

// A joiner verifies every decision it fetches: a founder that serves
// decisions with forged commit signatures or a changed payload is reported
// (bad-decision) and the joiner takes them from the others.
func TestJoinerRefusesForgedDecisions(t *testing.T) {
	h := newGrowHarness(t)
	const liar = 1
	h.opts[liar].tamperSend = func(to uint64, b []byte) [][]byte {
		f, err := decodeFrame(b[4:])
		if err != nil || f.kind != kindDecision || f.dec == nil {
			return [][]byte{b}
		}
		d := *f.dec
		if f.seq%2 == 0 {
			d.payload = append([]byte{}, d.payload...)
			d.payload[len(d.payload)-1] ^= 1
		} else {
			d.sigs = append([]sig{}, d.sigs...)
			for i := range d.sigs {
				d.sigs[i].value = append([]byte{}, d.sigs[i].value...)
				d.sigs[i].value[0] ^= 0x80
			}
		}
		f.dec = &d
		return [][]byte{encodeFrame(f)}
	}
	var asked atomic.Int64 // decision requests the joiner sent the liar
	h.opts[liar].observeRecv = func(from uint64, b []byte) bool {
		if f, err := decodeFrame(b); err == nil && f.kind == kindDecisionReq && from == 5 {
			asked.Add(1)
		}
		return false
	}
	for _, i := range founders {
		h.start(i)
	}
	// Many decisions: the joiner picks whom to ask for each at random.
	for k := range 12 {
		h.proposeOp(founders[k%4], fsm.Put(fmt.Sprintf("k%d", k), []byte("v")), 30*time.Second)
	}
	h.grow([]int{1, 2, 3})
	a := h.proposeOp(joiner, fsm.Put("after", []byte("v")), 30*time.Second)
	h.sameState(grown, a.Index)
	h.applied.check(t, grown)
	if asked.Load() > 0 {
		waitFor(t, 10*time.Second, "bad-decision evidence against the liar", func() bool {
			return h.ev[joiner].has(h.c.Keys[liar].Public(), "bad-decision")
		})
	}
	t.Logf("the joiner asked the liar for %d decisions", asked.Load())
	for _, i := range founders[1:] {
		if got := h.ev[joiner].against(h.c.Keys[i].Public()); len(got) > 0 {
			t.Fatalf("the joiner reported honest founder %d: %v", i+1, got)
		}
	}
}
