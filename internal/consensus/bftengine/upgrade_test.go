package bftengine

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyperledger-labs/SmartBFT/pkg/types"
	"github.com/hyperledger-labs/SmartBFT/pkg/wal"
	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// lastVerSeq is the verification sequence of member i's last decision.
func (h *harness) lastVerSeq(i int) int64 {
	e := h.engines[i]
	e.dmu.Lock()
	defer e.dmu.Unlock()
	return e.last.Proposal.VerificationSequence
}

// notOrdered fails the test if member i stored req at any index up to last.
func (h *harness) notOrdered(i int, req []byte, last uint64) {
	h.t.Helper()
	for idx := uint64(1); idx <= last; idx++ {
		x, ok, err := h.engines[i].st.entry(idx)
		if err != nil || !ok {
			h.t.Fatalf("member %d, entry %d: %v %v", i+1, idx, ok, err)
		}
		if string(x.entry.Request) == string(req) {
			h.t.Fatalf("member %d ordered the request at index %d", i+1, idx)
		}
	}
}

// A member down while the group changed its epoch restarts from its WAL and
// state of the epoch before, catches up across the change, and decides
// under the new verification sequence: the group needs it for a quorum
// once another member stops, and that member restarts after the change and
// takes part again.
func TestMemberDownAcrossAnEpochChangeRestartsAndDecides(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	a := h.proposeOp(2, fsm.Put("before", []byte("v")), 30*time.Second)
	h.waitIndex([]int{0, 1, 2, 3}, a.Index, 20*time.Second)
	if vs := h.lastVerSeq(2); vs != 0 {
		t.Fatalf("verification sequence at epoch 0 is %d", vs)
	}
	h.stop(2) // its WAL and store end in epoch 0

	h.remove(3, []int{0, 1, 3}) // nodes 1, 2, 3 remain: quorum 2
	b := h.proposeOp(0, fsm.Put("epoch1", []byte("v")), 30*time.Second)
	h.waitIndex([]int{0, 1}, b.Index, 20*time.Second)
	if vs := h.lastVerSeq(0); vs != 1 {
		t.Fatalf("verification sequence at epoch 1 is %d", vs)
	}

	h.start(2)
	waitFor(t, 30*time.Second, "the restarted member to reach epoch 1", func() bool {
		return h.engines[2].currentGroup().Epoch == 1 && h.engines[2].lastIdx.Load() >= b.Index
	})
	if h.engines[2].cons() == nil {
		t.Fatal("the restarted member does not run SmartBFT")
	}
	// Without member 2 the group needs the restarted one.
	h.stop(1)
	c := h.proposeOp(2, fsm.Put("needs-3", []byte("v")), 60*time.Second)
	h.sameState([]int{0, 2}, c.Index)
	if vs := h.lastVerSeq(2); vs != 1 {
		t.Fatalf("restarted member's last decision has verification sequence %d, want 1", vs)
	}

	h.start(1) // restarted after the change, from a WAL of epoch 1
	d := h.proposeOp(1, fsm.Put("back", []byte("v")), 60*time.Second)
	stay := []int{0, 1, 2}
	h.sameState(stay, d.Index)
	h.noForgedRequests(stay)
	h.applied.check(t, stay)
}

// Upgrade: a group that passed a membership change under the rule before
// ADR 12's epoch rule (verification sequence 0 always) is stopped, upgraded
// and restarted. Its WAL and decisions carry sequence 0; the leader's WAL
// ends with its own proposal of a request signed before the change (what
// that rule let a leader propose). The upgraded group comes back, decides
// through every member under the epoch as its sequence, and never orders
// the stale request.
func TestUpgradeFromConstantVerificationSequence(t *testing.T) {
	h := newHarness(t, 4)
	for i := range h.opts {
		h.opts[i].verSeqZero = true
	}
	h.startAll()
	h.proposeOp(0, fsm.Put("old", []byte("v")), 30*time.Second)
	stale := h.req(1, fsm.Put("stale", []byte("v"))) // names epoch 0
	h.removeLast()
	x := h.proposeOp(1, fsm.Put("old-rule-epoch1", []byte("v")), 30*time.Second)
	stay := []int{0, 1, 2}
	h.sameState(stay, x.Index)
	for _, i := range stay {
		if vs := h.lastVerSeq(i); vs != 0 {
			t.Fatalf("member %d decided under the old rule with verification sequence %d", i+1, vs)
		}
	}

	// The leader's proposal of the stale request for the next sequence, as
	// the old rule assembled it; the others never prepared it (they refuse
	// it).
	l := h.leaderIndex(0)
	le := h.engines[l]
	le.dmu.Lock()
	mdRaw, lastSeq := le.last.Proposal.Metadata, le.lastSeq
	le.dmu.Unlock()
	md := &protos.ViewMetadata{}
	if err := proto.Unmarshal(mdRaw, md); err != nil {
		t.Fatal(err)
	}
	next := &protos.ViewMetadata{ViewId: md.ViewId, LatestSequence: lastSeq + 1, DecisionsInView: md.DecisionsInView + 1}
	mdb, err := proto.Marshal(next)
	if err != nil {
		t.Fatal(err)
	}
	payload := batch{time: time.Now().UnixNano(), items: [][]byte{stale}}.encode()
	p := types.Proposal{Payload: payload, Metadata: mdb}
	p.Header = le.cfg.Self.Sign(le.proposalStatement(sha256.Sum256(payload), sha256.Sum256(mdb)))

	for _, i := range stay {
		h.stop(i)
	}
	rec, err := proto.Marshal(&protos.SavedMessage{Content: &protos.SavedMessage_ProposedRecord{ProposedRecord: &protos.ProposedRecord{
		PrePrepare: &protos.PrePrepare{View: next.ViewId, Seq: next.LatestSequence, Proposal: &protos.Proposal{
			Header: p.Header, Payload: p.Payload, Metadata: p.Metadata, VerificationSequence: 0,
		}},
		Prepare: &protos.Prepare{View: next.ViewId, Seq: next.LatestSequence, Digest: p.Digest()},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	lg := bftLogger{l: slog.New(slog.DiscardHandler)}
	w, _, err := wal.InitializeAndReadAll(lg, filepath.Join(h.dirs[l], "wal"), wal.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(rec, true); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	for _, i := range stay {
		h.opts[i].verSeqZero = false
		h.start(i)
		if g := h.engines[i].currentGroup(); g.Epoch != 1 || h.engines[i].cons() == nil {
			t.Fatalf("member %d restarted at %s (running SmartBFT: %v)", i+1, g, h.engines[i].cons() != nil)
		}
	}
	var last uint64
	for _, i := range stay {
		a := h.proposeOp(i, fsm.Put(fmt.Sprintf("new-rule-%d", i), []byte("v")), 60*time.Second)
		last = max(last, a.Index)
	}
	h.sameState(stay, last)
	for _, i := range stay {
		if vs := h.lastVerSeq(i); vs != 1 {
			t.Errorf("member %d decides with verification sequence %d after the upgrade, want the epoch 1", i+1, vs)
		}
		h.notOrdered(i, stale, last)
	}
	h.noForgedRequests(stay)
	h.applied.check(t, stay)
}

// The upgrade note's premise: in a group past a membership change, a member
// on the old rule (verification sequence 0) refuses the proposals of a
// leader on the new one (the epoch), so such a group upgrades all together.
func TestOldRuleMemberRefusesNewRuleProposals(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	h.removeLast()
	stay := []int{0, 1, 2}
	for _, i := range stay {
		waitFor(t, 10*time.Second, fmt.Sprintf("epoch 1 on member %d", i+1), func() bool { return h.engines[i].currentGroup().Epoch == 1 })
	}
	const old = 1
	h.stop(old)
	watch := &logWatch{seen: make(chan struct{}, 1)}
	want := "smartbft: Expected verification sequence 0 but got 1"
	watch.want.Store(&want)
	h.logs[old] = slog.New(watch)
	h.opts[old].verSeqZero = true
	h.start(old)
	if l := h.leaderIndex(0); l == old {
		t.Fatalf("member %d leads", old+1)
	}
	// Members 1 and 3 (quorum 2 of 3) decide without it.
	a := h.proposeOp(0, fsm.Put("new-rule", []byte("v")), 30*time.Second)
	select {
	case <-watch.seen:
	case <-time.After(20 * time.Second):
		t.Fatalf("member %d on the old rule did not refuse the proposal of index %d", old+1, a.Index)
	}
}
