package bftengine

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// cutOff makes member i deaf and mute on the group's links while cut is set:
// it sends nothing and drops every frame it reads.
func (h *harness) cutOff(i int, cut *atomic.Bool) {
	h.opts[i].tamperSend = func(_ uint64, b []byte) [][]byte {
		if cut.Load() {
			return nil
		}
		return [][]byte{b}
	}
	h.opts[i].observeRecv = func(uint64, []byte) bool { return cut.Load() }
}

// removeLast removes member 3 (node ID 4) by a motion of the other three and
// waits until they run three nodes; it returns the decision that removed it.
func (h *harness) removeLast() uint64 { return h.remove(3, []int{0, 1, 2}) }

// remove removes member i of four by a motion the others pass and waits
// until they run three nodes; it returns the decision that removed it.
func (h *harness) remove(i int, others []int) uint64 {
	h.t.Helper()
	open := h.proposeOp(others[0], fsm.RemoveMember(h.c.Keys[i].Public(), 0, "left"), 60*time.Second)
	for _, j := range others {
		h.proposeOp(j, fsm.Vote(open.Result.Motion, true), 60*time.Second)
	}
	// The node set only, not the epoch: a member stores its roster before
	// its group while it applies the removal, so a caller's next request may
	// be signed for the old epoch; ProposeOp signs it again (epoch_test.go).
	for _, j := range others {
		waitFor(h.t, 30*time.Second, fmt.Sprintf("three nodes on member %d", j+1), func() bool {
			return len(h.engines[j].roster().nodes) == 3
		})
	}
	return h.engines[others[0]].rosters().last().from - 1
}

// A member that misses the whole removal (cut off from before the motion
// opened until the others run without it) learns it once it hears them
// again: they serve it the decisions up to the one that removed it, it
// applies them, leaves SmartBFT and refuses to propose; it is served
// nothing decided after its removal.
func TestRemovedMemberThatMissedItsRemovalLearnsIt(t *testing.T) {
	h := newHarness(t, 4)
	var cut atomic.Bool
	h.cutOff(3, &cut)
	h.startAll()
	h.proposeOp(1, fsm.Put("before", []byte("v")), 30*time.Second)
	cut.Store(true)
	removal := h.removeLast()
	after := h.proposeOp(1, fsm.Put("after", []byte("v")), 30*time.Second)
	gone := h.engines[3]
	if gone.self.Load() == 0 {
		t.Fatal("the cut-off member learned of its removal while cut off")
	}
	cut.Store(false)
	waitFor(t, 30*time.Second, "the removed member to learn its removal", func() bool { return gone.self.Load() == 0 })
	if g := gone.currentGroup(); g.Epoch != 1 || g.IsMember(h.c.Keys[3].Public()) {
		t.Fatalf("the removed member reached %s, want epoch 1 without it", g)
	}
	ctx, cancel := contextWithin(5 * time.Second)
	defer cancel()
	if _, err := gone.ProposeOp(ctx, fsm.Put("x", nil)); !errors.Is(err, consensus.ErrNotMember) {
		t.Fatalf("propose by the removed member: %v, want ErrNotMember", err)
	}
	// What it holds ends with the decision that removed it.
	gone.dmu.Lock()
	seq := gone.lastSeq
	gone.dmu.Unlock()
	if seq != removal || gone.lastIdx.Load() >= after.Index {
		t.Fatalf("the removed member holds decision %d, index %d; want decision %d and nothing at index %d", seq, gone.lastIdx.Load(), removal, after.Index)
	}
	h.applied.check(t, []int{0, 1, 2, 3})
	a := h.proposeOp(2, fsm.Put("three", []byte("v")), 30*time.Second)
	h.sameState([]int{0, 1, 2}, a.Index)
}

// A leader cut off while the others replace it and then remove it still
// believes it leads view 0: it hears no heartbeat and nothing that makes
// SmartBFT synchronize. Its catch-up sees more than f members ahead and
// makes it synchronize, so it learns its removal too.
func TestRemovedLeaderThatMissedItsRemovalLearnsIt(t *testing.T) {
	h := newHarness(t, 4)
	var cut atomic.Bool
	h.cutOff(0, &cut) // node ID 1, the leader of view 0
	h.startAll()
	h.proposeOp(1, fsm.Put("before", []byte("v")), 30*time.Second)
	cut.Store(true)
	removal := h.remove(0, []int{1, 2, 3})
	gone := h.engines[0]
	if gone.self.Load() == 0 || gone.leaderID() != 1 {
		t.Fatalf("the cut-off leader has ID %d and sees leader %d, want 1 and 1", gone.self.Load(), gone.leaderID())
	}
	cut.Store(false)
	waitFor(t, 30*time.Second, "the removed leader to learn its removal", func() bool { return gone.self.Load() == 0 })
	gone.dmu.Lock()
	seq := gone.lastSeq
	gone.dmu.Unlock()
	if seq != removal {
		t.Fatalf("the removed leader holds decision %d, want %d (its removal)", seq, removal)
	}
	ctx, cancel := contextWithin(5 * time.Second)
	defer cancel()
	if _, err := gone.ProposeOp(ctx, fsm.Put("x", nil)); !errors.Is(err, consensus.ErrNotMember) {
		t.Fatalf("propose by the removed leader: %v, want ErrNotMember", err)
	}
	h.applied.check(t, []int{0, 1, 2, 3})
}

// received records the height and decision answers member i reads.
type received struct {
	mu      sync.Mutex
	heights map[uint64]uint64 // sender → last height it answered
	decs    map[[2]uint64]bool
	attests int
}

func (r *received) observe(from uint64, b []byte) bool {
	f, err := decodeFrame(b)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch f.kind {
	case kindHeight:
		r.heights[from] = f.seq
	case kindDecision:
		r.decs[[2]uint64{from, f.seq}] = f.dec != nil
	case kindAttest:
		r.attests++
	}
	return false
}

// A removed member is served read-only and for a bounded time: heights are
// capped at the decision that removed it, a decision after it is answered
// as not held, its attestation requests and votes are not read, and once
// the grace ends its link and connection are gone.
func TestRemovedMemberIsServedReadOnlyForAWhile(t *testing.T) {
	h := newHarness(t, 4)
	const grace = 10 * time.Second
	for i := range 3 {
		h.opts[i].removedGrace = grace
	}
	rec := &received{heights: map[uint64]uint64{}, decs: map[[2]uint64]bool{}}
	h.opts[3].observeRecv = rec.observe
	h.startAll()
	start := time.Now() // before any member applies the removal
	removal := h.removeLast()
	gone := h.engines[3]
	waitFor(t, 30*time.Second, "the removed member to learn its removal", func() bool { return gone.self.Load() == 0 })
	h.proposeOp(1, fsm.Put("after", []byte("v")), 30*time.Second)
	for _, i := range []int{0, 1, 2} {
		waitFor(t, 10*time.Second, fmt.Sprintf("member %d past the removal", i+1), func() bool {
			e := h.engines[i]
			e.dmu.Lock()
			defer e.dmu.Unlock()
			return e.lastSeq > removal
		})
	}

	// It asks as a lagging member would, and a few things it may not.
	ask := func() {
		for id := uint64(1); id <= 3; id++ {
			gone.comm.send(id, encodeFrame(frame{kind: kindHeightReq}))
			gone.comm.send(id, encodeFrame(frame{kind: kindDecisionReq, seq: removal}))
			gone.comm.send(id, encodeFrame(frame{kind: kindDecisionReq, seq: removal + 1}))
			gone.comm.send(id, encodeFrame(frame{kind: kindAttestReq, seq: 1}))
		}
	}
	ask()
	asked := time.Now()
	waitFor(t, 10*time.Second, "answers of the three members", func() bool {
		rec.mu.Lock()
		done := len(rec.heights) == 3
		for id := uint64(1); id <= 3; id++ {
			_, ok := rec.decs[[2]uint64{id, removal + 1}]
			done = done && ok
		}
		rec.mu.Unlock()
		if !done && time.Since(asked) > 500*time.Millisecond {
			ask() // a frame can be dropped while a connection is replaced
			asked = time.Now()
		}
		return done
	})
	rec.mu.Lock()
	for id := uint64(1); id <= 3; id++ {
		if h := rec.heights[id]; h != removal {
			t.Errorf("member %d answered height %d, want %d (the removal)", id, h, removal)
		}
		if !rec.decs[[2]uint64{id, removal}] {
			t.Errorf("member %d did not serve decision %d (the removal)", id, removal)
		}
		if rec.decs[[2]uint64{id, removal + 1}] {
			t.Errorf("member %d served decision %d, after the removal", id, removal+1)
		}
	}
	if rec.attests > 0 {
		t.Errorf("the removed member got %d attestations", rec.attests)
	}
	rec.mu.Unlock()

	for _, i := range []int{0, 1, 2} {
		l := h.engines[i].comm.linkOf(h.c.Keys[3].Public())
		if l == nil || l.removedAt.Load() != removal {
			t.Fatalf("member %d does not keep the removed member's link marked removed at %d", i+1, removal)
		}
		if ids := h.engines[i].comm.ids(); len(ids) != 2 {
			t.Fatalf("member %d counts %v as members", i+1, ids)
		}
	}
	waitFor(t, grace+20*time.Second, "the removed member's links to end", func() bool {
		for _, i := range []int{0, 1, 2} {
			if h.engines[i].comm.linkOf(h.c.Keys[3].Public()) != nil {
				return false
			}
		}
		return true
	})
	if time.Since(start) < grace {
		t.Fatalf("links ended %v after the removal began, before the grace of %v", time.Since(start), grace)
	}
}

// lingerNet records what the engine asks the network to let linger.
type lingerNet struct {
	consensus.Network
	mu      sync.Mutex
	lingers map[string]time.Time
}

func (n *lingerNet) Linger(k identity.PublicKey, until time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lingers[k.String()] = until
}

// setRoster keeps a removed member's link, marked and out of the member
// IDs, and tells the network; the link ends when the grace does, when the
// member is added again (under a new ID: one link per key), or when this
// member is removed too (a removed member serves nobody).
func TestRemovedMembersLinkLingers(t *testing.T) {
	ks, group := sortedKeys(t, 4)
	r0 := genesisRoster(group(0, ks...))
	r1 := r0.then(group(1, ks[0], ks[1], ks[2]), 5) // ID 4 removed by decision 4
	r2 := r1.then(group(2, ks...), 9)               // and added again, as ID 5
	net := &lingerNet{lingers: map[string]time.Time{}}
	newC := func() *comm {
		return newComm(&Engine{log: slog.New(slog.DiscardHandler), cfg: consensus.EngineConfig{Net: net}})
	}

	c := newC()
	c.setRoster(r0, 1, time.Hour)
	c.setRoster(r1, 1, time.Hour)
	l := c.link(4)
	if l == nil || l.removedAt.Load() != 4 || c.linkOf(ks[3]) != l {
		t.Fatalf("removed member's link %+v, want it kept, removed at 4", l)
	}
	if ids := c.ids(); len(ids) != 2 || slices.Contains(ids, 4) {
		t.Fatalf("member IDs %v count the removed member", ids)
	}
	net.mu.Lock()
	until, ok := net.lingers[ks[3].String()]
	net.mu.Unlock()
	if !ok || time.Until(until) < 59*time.Minute {
		t.Fatalf("the network was told %v %v, want about an hour", ok, until)
	}
	c.setRoster(r2, 1, time.Hour)
	if c.link(4) != nil || c.linkOf(ks[3]) != c.link(5) || c.link(5) == nil || c.link(5).removedAt.Load() != 0 {
		t.Fatal("the member added again keeps its old link beside the new one")
	}

	c = newC()
	c.setRoster(r0, 1, time.Hour)
	c.setRoster(r1, 1, time.Hour)
	c.setRoster(r1, 0, time.Hour) // this member removed too
	if c.link(4) != nil {
		t.Fatal("a removed member keeps serving another removed member")
	}

	c = newC()
	c.setRoster(r0, 1, 0)
	c.setRoster(r1, 1, 0)
	if c.link(4) != nil {
		t.Fatal("a removed member's link lingers with no grace")
	}

	c = newC()
	c.setRoster(r0, 1, 50*time.Millisecond)
	c.setRoster(r1, 1, 50*time.Millisecond)
	waitFor(t, 10*time.Second, "the removed member's link to end with its grace", func() bool { return c.link(4) == nil })
}
