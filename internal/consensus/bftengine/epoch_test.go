package bftengine

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger-labs/SmartBFT/pkg/types"
	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// noForgedRequests fails the test if any running member reported
// forged-request evidence: a request signed for an earlier epoch is stale,
// and whoever proposes it is not to blame.
func (h *harness) noForgedRequests(members []int) {
	h.t.Helper()
	for _, i := range members {
		for j := range h.c.Keys {
			if h.ev[i].has(h.c.Keys[j].Public(), "forged-request") {
				h.t.Errorf("member %d reported forged-request evidence against member %d", i+1, j+1)
			}
		}
	}
}

// leaderIndex is the harness index of the leader member i knows of.
func (h *harness) leaderIndex(i int) int {
	h.t.Helper()
	l := h.engines[i].leaderID()
	for j, k := range h.c.Keys {
		if h.engines[i].roster().ids[k.Public()] == l {
			return j
		}
	}
	h.t.Fatalf("member %d knows no leader", i+1)
	return -1
}

// A member that proposes while it applies a membership change (its roster
// already the new one, its group not yet) signs for the epoch being
// replaced. The request is signed again for the new epoch and decided
// promptly: no leader proposes the stale copy, no view changes, no member
// is blamed. Before the fix the stale copy stayed in SmartBFT's pools, each
// leader proposing it was refused and replaced, and ProposeOp waited until
// its context ended.
func TestRequestSignedInTheEpochWindowIsSignedAgain(t *testing.T) {
	h := newHarness(t, 4)
	type result struct {
		a   consensus.Applied
		err error
		in  time.Duration
	}
	res := make(chan result, 1)
	signed := make(chan struct{}, 8)
	h.opts[1].onSigned = func() {
		select {
		case signed <- struct{}{}:
		default:
		}
	}
	var once sync.Once
	h.opts[1].inEpochWindow = func(e *Engine) {
		once.Do(func() {
			for len(signed) > 0 {
				<-signed
			}
			go func() {
				ctx, cancel := contextWithin(20 * time.Second)
				defer cancel()
				start := time.Now()
				a, err := e.ProposeOp(ctx, fsm.Put("window", []byte("v")))
				res <- result{a, err, time.Since(start)}
			}()
			select {
			case <-signed:
			case <-time.After(10 * time.Second):
				t.Error("no request was signed in the window")
			}
		})
	}
	h.startAll()
	h.proposeOp(0, fsm.Put("before", []byte("v")), 30*time.Second)
	view := h.engines[0].lastView.Load()
	h.remove(3, []int{0, 1, 2})
	var r result
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("the request signed in the window was never answered")
	}
	if r.err != nil {
		t.Fatalf("propose in the window: %v (after %v)", r.err, r.in)
	}
	if !r.a.Result.OK() {
		t.Fatalf("propose in the window: %v", r.a.Result.Err())
	}
	if r.in > 10*time.Second {
		t.Errorf("the request signed in the window took %v", r.in)
	}
	q, err := fsm.DecodeRequest(r.a.Entry.Request)
	if err != nil {
		t.Fatal(err)
	}
	if g := h.engines[1].currentGroup(); q.Group != g.ID() || g.Epoch != 1 {
		t.Fatalf("decided request names %s, want epoch 1's %s", q.Group, g.ID())
	}
	after := h.proposeOp(2, fsm.Put("after", []byte("v")), 30*time.Second)
	h.waitIndex([]int{0, 1, 2}, after.Index, 30*time.Second)
	for _, i := range []int{0, 1, 2} {
		if v := h.engines[i].lastView.Load(); v != view {
			t.Errorf("member %d is in view %d, want %d: a leader was replaced", i+1, v, view)
		}
	}
	h.noForgedRequests([]int{0, 1, 2})
	// Decisions carry the epoch they were proposed in.
	h.engines[0].dmu.Lock()
	vs := h.engines[0].last.Proposal.VerificationSequence
	h.engines[0].dmu.Unlock()
	if vs != 1 {
		t.Errorf("last decision's verification sequence is %d, want the epoch 1", vs)
	}
	h.applied.check(t, []int{0, 1, 2})
}

// Propose refuses a request signed for an earlier epoch at once, with
// ErrStale (retryable: the caller signs it again), and orders nothing.
func TestProposeRefusesAStaleRequestAtOnce(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	stale := h.req(1, fsm.Put("stale", []byte("v"))) // names epoch 0
	h.removeLast()
	ctx, cancel := contextWithin(5 * time.Second)
	defer cancel()
	start := time.Now()
	_, err := h.engines[1].Propose(ctx, stale)
	if !errors.Is(err, ErrStale) {
		t.Fatalf("propose of a request for epoch 0 at epoch 1: %v, want ErrStale", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v", d)
	}
	// A request for a group this one never was is not stale.
	other := fsm.Group{Name: "other", Mode: fsm.ModeBFT, Members: h.c.Group.Members}
	q, err := fsm.SignRequest(h.c.Keys[1], other.ID(), 1, fsm.Put("x", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.engines[1].Propose(ctx, q.Encode()); err == nil || errors.Is(err, ErrStale) {
		t.Fatalf("propose of a request for another group: %v, want a refusal other than ErrStale", err)
	}
}

// A leader whose pool holds a request for an earlier epoch leaves it out of
// its proposals (and its pool), so that its followers do not refuse them:
// no forged-request evidence, no view change, and the group keeps deciding.
func TestLeaderLeavesStaleRequestsOut(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	stale := h.req(1, fsm.Put("stale", []byte("v"))) // names epoch 0
	h.removeLast()
	view := h.engines[0].lastView.Load()
	l := h.leaderIndex(0)
	// As if submitted there just before the change applied (ProposeOp's
	// window): SubmitRequest does not check it.
	if err := h.engines[l].cons().SubmitRequest(stale); err != nil {
		t.Fatalf("submit to the leader's pool: %v", err)
	}
	waitFor(t, 10*time.Second, "the leader to drop the stale request", func() bool { return h.engines[l].cons().Pool.Size() == 0 })
	via := 0
	if l == 0 {
		via = 1
	}
	a := h.proposeOp(via, fsm.Put("fresh", []byte("v")), 10*time.Second)
	h.waitIndex([]int{0, 1, 2}, a.Index, 10*time.Second)
	for _, i := range []int{0, 1, 2} {
		if v := h.engines[i].lastView.Load(); v != view {
			t.Errorf("member %d is in view %d, want %d: a leader was replaced", i+1, v, view)
		}
	}
	h.noForgedRequests([]int{0, 1, 2})
	h.applied.check(t, []int{0, 1, 2})
	// Nothing of the stale request was applied.
	for idx := uint64(1); idx <= a.Index; idx++ {
		x, ok, err := h.engines[0].st.entry(idx)
		if err != nil || !ok {
			t.Fatalf("entry %d: %v %v", idx, ok, err)
		}
		if string(x.entry.Request) == string(stale) {
			t.Fatalf("the stale request was ordered at index %d", idx)
		}
	}
}

// A follower refuses a proposal that holds a request for an earlier epoch
// (a leader that lagged may propose one in good faith) without recording
// evidence; one that holds a request for a group this one never was is
// forged-request evidence, as before.
func TestFollowerRefusesStaleProposalWithoutEvidence(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	stale := h.req(1, fsm.Put("stale", []byte("v"))) // names epoch 0
	h.removeLast()
	l := h.leaderIndex(0)
	f := (l + 1) % 3
	le, fe := h.engines[l], h.engines[f]
	// removeLast waits for the node set only; the group follows it a moment
	// later (the window TestRequestSignedInTheEpochWindowIsSignedAgain opens).
	waitFor(t, 10*time.Second, "epoch 1 on the follower", func() bool { return fe.currentGroup().Epoch == 1 })
	fe.dmu.Lock()
	next := fe.lastSeq + 1
	fe.dmu.Unlock()
	proposal := func(item []byte) types.Proposal {
		md, err := proto.Marshal(&protos.ViewMetadata{ViewId: fe.lastView.Load(), LatestSequence: next})
		if err != nil {
			t.Fatal(err)
		}
		payload := batch{time: time.Now().UnixNano(), items: [][]byte{item}}.encode()
		p := types.Proposal{Payload: payload, Metadata: md, VerificationSequence: 1}
		p.Header = le.cfg.Self.Sign(le.proposalStatement(sha256.Sum256(payload), sha256.Sum256(md)))
		return p
	}
	if _, err := (app{fe}).VerifyProposal(proposal(stale)); !errors.Is(err, ErrStale) {
		t.Fatalf("proposal with a stale request: %v, want ErrStale", err)
	}
	if ev := h.ev[f].against(h.c.Keys[l].Public()); len(ev) != 0 {
		t.Fatalf("evidence against the leader for a stale request: %v", ev)
	}
	other := fsm.Group{Name: "other", Mode: fsm.ModeBFT, Members: h.c.Group.Members}
	q, err := fsm.SignRequest(h.c.Keys[1], other.ID(), 1, fsm.Put("x", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (app{fe}).VerifyProposal(proposal(q.Encode())); err == nil || errors.Is(err, ErrStale) {
		t.Fatalf("proposal with another group's request: %v, want a refusal other than ErrStale", err)
	}
	if !h.ev[f].has(h.c.Keys[l].Public(), "forged-request") {
		t.Fatal("no forged-request evidence for another group's request")
	}
}

// ErrStale spares a leader only for a request a member of the earlier epoch
// really signed for it. A stale group ID on a forged request (bad signature,
// or a proposer that was never a member) is forged-request evidence, and so
// is a forged item in a proposal that also holds a stale one: the stale
// item does not hide it.
func TestStaleRequestDoesNotShieldAForgedOne(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	stale := h.req(1, fsm.Put("stale", []byte("v")))  // names epoch 0
	stale2 := h.req(2, fsm.Put("stale", []byte("w"))) // names epoch 0
	outsider, err := identity.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	q, err := fsm.SignRequest(outsider, h.c.Group.ID(), 1, fsm.Put("x", nil))
	if err != nil {
		t.Fatal(err)
	}
	outsiders := q.Encode() // names epoch 0, never a member's
	h.removeLast()
	l := h.leaderIndex(0)
	f := (l + 1) % 3
	le, fe := h.engines[l], h.engines[f]
	waitFor(t, 10*time.Second, "epoch 1 on the follower", func() bool { return fe.currentGroup().Epoch == 1 })
	fe.dmu.Lock()
	next := fe.lastSeq + 1
	fe.dmu.Unlock()
	proposal := func(items ...[]byte) types.Proposal {
		md, err := proto.Marshal(&protos.ViewMetadata{ViewId: fe.lastView.Load(), LatestSequence: next})
		if err != nil {
			t.Fatal(err)
		}
		payload := batch{time: time.Now().UnixNano(), items: items}.encode()
		p := types.Proposal{Payload: payload, Metadata: md, VerificationSequence: 1}
		p.Header = le.cfg.Self.Sign(le.proposalStatement(sha256.Sum256(payload), sha256.Sum256(md)))
		return p
	}
	badSig := slices.Clone(stale2)
	badSig[len(badSig)-1] ^= 1
	other := fsm.Group{Name: "other", Mode: fsm.ModeBFT, Members: h.c.Group.Members}
	oq, err := fsm.SignRequest(h.c.Keys[1], other.ID(), 1, fsm.Put("x", nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		items [][]byte
	}{
		{"stale group ID, bad signature", [][]byte{badSig}},
		{"stale group ID, never a member", [][]byte{outsiders}},
		{"stale request before another group's", [][]byte{stale, oq.Encode()}},
	} {
		h.ev[f].mu.Lock()
		h.ev[f].got = nil
		h.ev[f].mu.Unlock()
		fe.evMu.Lock()
		clear(fe.evLast) // evidence repeats at most every 10 s
		fe.evMu.Unlock()
		if _, err := (app{fe}).VerifyProposal(proposal(tc.items...)); err == nil || errors.Is(err, ErrStale) {
			t.Errorf("%s: %v, want a refusal other than ErrStale", tc.name, err)
		}
		if !h.ev[f].has(h.c.Keys[l].Public(), "forged-request") {
			t.Errorf("%s: no forged-request evidence against the leader", tc.name)
		}
	}
}
