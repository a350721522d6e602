package bftengine

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// allowance is a member's gate in these tests: each member may have limit
// requests admitted in all; it counts admissions not yet released.
type allowance struct {
	mu       sync.Mutex
	limit    int
	admitted map[identity.PublicKey]int
	held     int
}

func newAllowance(limit int) *allowance {
	return &allowance{limit: limit, admitted: map[identity.PublicKey]int{}}
}

func (a *allowance) admit(member identity.PublicKey, size int) (func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.admitted[member] >= a.limit {
		return nil, refusal.New(refusal.StageBudget, "member %s: %d proposals, limit %d", member.Short(), a.admitted[member], a.limit)
	}
	a.admitted[member]++
	a.held++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.held--
			a.mu.Unlock()
		})
	}, nil
}

func (a *allowance) count(member identity.PublicKey) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.admitted[member]
}

func (a *allowance) outstanding() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held
}

// leaderIndex waits for the members to agree on a leader and returns it.
func leaderIndex(t *testing.T, h *harness) int {
	t.Helper()
	at := -1
	waitFor(t, 20*time.Second, "a leader", func() bool {
		l := h.engines[0].leaderID()
		for i, e := range h.engines {
			if l != 0 && e.self.Load() == l {
				at = i
				return true
			}
		}
		return false
	})
	return at
}

// TestFloodingMemberIsBudgeted: a member that proposes past its allowance at
// the leader gets the leader's budget refusal promptly (not a timeout),
// while another member's proposals keep deciding: the limit is per member,
// and the admissions of decided requests are released.
func TestFloodingMemberIsBudgeted(t *testing.T) {
	const limit = 4
	h := newHarness(t, 4)
	gates := make([]*allowance, 4)
	for i := range gates {
		gates[i] = newAllowance(limit)
		h.gates[i] = gates[i].admit
	}
	h.startAll()
	li := leaderIndex(t, h)
	flooder, honest := (li+1)%4, (li+2)%4
	fk, hk := h.c.Keys[flooder].Public(), h.c.Keys[honest].Public()

	for n := range limit {
		ctx, cancel := contextWithin(20 * time.Second)
		_, err := h.engines[flooder].ProposeOp(ctx, fsm.Put(fmt.Sprintf("f%d", n), []byte("v")))
		cancel()
		if err != nil {
			t.Fatalf("proposal %d within the allowance: %v", n, err)
		}
	}
	ctx, cancel := contextWithin(20 * time.Second)
	start := time.Now()
	_, err := h.engines[flooder].ProposeOp(ctx, fsm.Put("over", []byte("v")))
	cancel()
	var ref *refusal.Error
	if !errors.As(err, &ref) || ref.Stage != refusal.StageBudget {
		t.Fatalf("proposal over the allowance: err %v, want a budget refusal", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("refusal took %v, want it promptly", took)
	}
	if got := gates[li].count(fk); got != limit {
		t.Fatalf("leader admitted %d of the flooder's proposals, want %d", got, limit)
	}

	// The other member is not limited by the flooder's spending.
	for n := range limit {
		ctx, cancel := contextWithin(20 * time.Second)
		_, err := h.engines[honest].ProposeOp(ctx, fsm.Put(fmt.Sprintf("h%d", n), []byte("v")))
		cancel()
		if err != nil {
			t.Fatalf("honest member's proposal %d: %v", n, err)
		}
	}
	if got := gates[li].count(hk); got != limit {
		t.Fatalf("leader admitted %d of the honest member's proposals, want %d", got, limit)
	}
	// The leader's own proposals are not charged.
	ctx, cancel = contextWithin(20 * time.Second)
	if _, err := h.engines[li].ProposeOp(ctx, fsm.Put("leader", []byte("v"))); err != nil {
		t.Fatalf("leader's own proposal: %v", err)
	}
	cancel()
	if got := gates[li].count(h.c.Keys[li].Public()); got != 0 {
		t.Fatalf("leader charged itself %d times", got)
	}
	// The refused request was not ordered.
	var found bool
	ctx, cancel = contextWithin(20 * time.Second)
	defer cancel()
	if err := h.engines[li].Read(ctx, func(m *fsm.Machine) { _, found = m.Get("over") }); err != nil {
		t.Fatal(err)
	}
	if found {
		t.Fatal("the refused request was ordered")
	}
	// Once the allowance is raised, the proposer may try again.
	gates[li].mu.Lock()
	gates[li].limit++
	gates[li].mu.Unlock()
	if _, err := h.engines[flooder].ProposeOp(ctx, fsm.Put("over", []byte("v"))); err != nil {
		t.Fatalf("retry within the raised allowance: %v", err)
	}
	waitFor(t, 10*time.Second, "every admission released", func() bool { return gates[li].outstanding() == 0 })
}

// TestRefusalOnlyFromTheLeaderAskedIsTaken: a member the request was not
// sent to cannot fail it with a refusal frame.
func TestRefusalOnlyFromTheLeaderAskedIsTaken(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	e := h.engines[0]
	item := h.req(0, fsm.Put("k", []byte("v")))
	w := waiter{}
	e.mu.Lock()
	w.ob = e.trackLocked(sha256.Sum256(item))
	w.ob.to = []uint64{2}
	e.mu.Unlock()
	defer func() { e.mu.Lock(); e.untrackLocked(sha256.Sum256(item)); e.mu.Unlock() }()
	r := refusalOf{hash: sha256.Sum256(item), stage: refTrust, reason: "no\x1b[31m"}
	e.takeRefusal(&link{id: 3, key: h.c.Keys[2].Public()}, r)
	select {
	case <-w.ob.refused:
		t.Fatal("a refusal from a member the request was not sent to was taken")
	default:
	}
	e.takeRefusal(&link{id: 2, key: h.c.Keys[1].Public()}, r)
	select {
	case <-w.ob.refused:
	default:
		t.Fatal("the refusal of the member asked was not taken")
	}
	if refusal.StageOf(w.ob.err) != refusal.StageTrust {
		t.Fatalf("stage %q, want trust", refusal.StageOf(w.ob.err))
	}
}

// TestAdmissionsAreReleased: an admission is released when its request is
// decided, when this member no longer leads, or when it waited past
// admitHold, so a request that never decides holds no budget for long; the
// memory of decided requests is bounded.
func TestAdmissionsAreReleased(t *testing.T) {
	e := &Engine{opts: testOptions(), gate: gate{held: map[[32]byte]admission{}, decided: map[[32]byte]bool{}}}
	e.cfg.AdmitRequest = func(identity.PublicKey, int) (func(), error) { return nil, nil }
	released := map[string]int{}
	adm := func(name string, leader uint64, at time.Time) admission {
		return admission{release: func() { released[name]++ }, leader: leader, at: at}
	}
	now := time.Now()
	items := map[string][]byte{"live": []byte("live"), "other-view": []byte("other"), "stale": []byte("stale")}
	e.gate.held[sha256.Sum256(items["live"])] = adm("live", 1, now)
	e.gate.held[sha256.Sum256(items["other-view"])] = adm("other-view", 2, now)
	e.gate.held[sha256.Sum256(items["stale"])] = adm("stale", 1, now.Add(-e.admitHold()-time.Second))
	e.gate.mu.Lock()
	e.sweepLocked(1, now)
	e.gate.mu.Unlock()
	if released["other-view"] != 1 || released["stale"] != 1 || released["live"] != 0 || len(e.gate.held) != 1 {
		t.Fatalf("after the sweep: released %v, %d held", released, len(e.gate.held))
	}
	e.decidedItems([][]byte{items["live"]})
	if released["live"] != 1 || len(e.gate.held) != 0 || !e.isDecided(sha256.Sum256(items["live"])) {
		t.Fatalf("after its decision: released %v, %d held", released, len(e.gate.held))
	}
	for i := range decidedKept + 1 {
		e.decidedItems([][]byte{fmt.Appendf(nil, "item %d", i)})
	}
	if n := len(e.gate.decided); n > decidedKept {
		t.Fatalf("%d decided items remembered, limit %d", n, decidedKept)
	}
	e.gate.held[sha256.Sum256(items["live"])] = adm("live", 1, now)
	e.releaseAll()
	if released["live"] != 2 || len(e.gate.held) != 0 {
		t.Fatalf("after close: released %v, %d held", released, len(e.gate.held))
	}
}
