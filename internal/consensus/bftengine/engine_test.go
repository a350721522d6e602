package bftengine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

func TestFourMembersDecideAndAgree(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()

	// Every member proposes, concurrently, through itself.
	const per = 5
	var wg sync.WaitGroup
	errs := make(chan error, 4*per)
	for i := range 4 {
		reqs := make([][]byte, per)
		for j := range per {
			reqs[j] = h.req(i, fsm.Put(fmt.Sprintf("k%d-%d", i, j), []byte("v")))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range reqs {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				a, err := h.engines[i].Propose(ctx, r)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if !a.Result.OK() {
					errs <- a.Result.Err()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := []int{0, 1, 2, 3}
	h.waitIndex(all, 4*per, 10*time.Second)
	d := h.digest(0)
	for _, i := range all[1:] {
		if h.digest(i) != d {
			t.Fatalf("member %d's state differs from member 1's", i+1)
		}
	}
	h.applied.check(t, all)

	// A linearizable read on another member sees every write.
	var n int
	if err := h.engines[2].Read(context.Background(), func(m *fsm.Machine) { n = len(m.Keys("k")) }); err != nil {
		t.Fatal(err)
	}
	if n != 4*per {
		t.Fatalf("read saw %d keys, want %d", n, 4*per)
	}
	st := h.engines[1].Status()
	if !st.Healthy || st.Leader.IsZero() || st.LastIndex < 4*per {
		t.Fatalf("status %+v", st)
	}
}

func TestProposeRefusals(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	e := h.engines[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := e.Propose(ctx, []byte("junk")); err == nil {
		t.Fatal("malformed request accepted")
	}
	stranger := h.c.Keys[0] // signs for another group
	other, _ := fsm.NewGroup("other", fsm.ModeBFT, 0, h.c.Group.Members)
	q, _ := fsm.SignRequest(stranger, other.ID(), 1, fsm.Put("a", nil))
	if _, err := e.Propose(ctx, q.Encode()); err == nil {
		t.Fatal("request for another group accepted")
	}
	// A request whose signature is not its proposer's.
	r := h.req(1, fsm.Put("a", []byte("1")))
	r[len(r)-1] ^= 1
	if _, err := e.Propose(ctx, r); err == nil {
		t.Fatal("request with a bad signature accepted")
	}
	// A CAS mismatch is an agreed result, not an error.
	a, err := e.Propose(ctx, h.req(1, fsm.CAS("a", []byte("x"), 7)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Result.Code != fsm.CodeCASMismatch {
		t.Fatalf("code %q, want cas-mismatch", a.Result.Code)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	h.engines[0] = nil
	if _, err := e.Propose(ctx, h.req(1, fsm.Put("b", nil))); !errors.Is(err, consensus.ErrClosed) {
		t.Fatalf("propose after close: %v, want ErrClosed", err)
	}
}

func TestRecordsVerifyOffline(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	a := h.propose(1, h.req(1, fsm.OpenMotion("approve", 3, 0, "merge #12")), 10*time.Second)
	h.waitIndex([]int{0, 1, 2, 3}, a.Index, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 4 {
		r, err := h.engines[i].Record(ctx, a.Index)
		if err != nil {
			t.Fatalf("member %d: %v", i+1, err)
		}
		if err := fsm.Verify(r); err != nil {
			t.Fatalf("member %d's record: %v", i+1, err)
		}
		if len(r.Certificate) < h.c.Group.Quorum() {
			t.Fatalf("certificate of %d", len(r.Certificate))
		}
	}
	if _, err := h.engines[0].Record(ctx, a.Index+100); !errors.Is(err, consensus.ErrNoRecord) {
		t.Fatalf("record of an unknown index: %v", err)
	}
}

func (h *harness) leader(via int) int {
	h.t.Helper()
	var l int = -1
	waitFor(h.t, 10*time.Second, "a leader", func() bool {
		k := h.engines[via].Status().Leader
		for i, m := range h.c.Keys {
			if !k.IsZero() && m.Public().Equal(k) {
				l = i
				return true
			}
		}
		return false
	})
	return l
}

func TestLeaderCrashViewChangeAndRestart(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	first := h.propose(0, h.req(0, fsm.Put("before", []byte("1"))), 10*time.Second)
	l := h.leader(0)
	h.waitIndex([]int{l}, first.Index, 10*time.Second)
	h.stop(l)

	// The others replace the silent leader and go on.
	via := (l + 1) % 4
	a := h.propose(via, h.req(via, fsm.Put("after", []byte("2"))), 30*time.Second)
	nl := h.leader(via)
	if nl == l {
		t.Fatalf("member %d still leads after it stopped", l+1)
	}
	var rest []int
	for i := range 4 {
		if i != l {
			rest = append(rest, i)
		}
	}
	h.waitIndex(rest, a.Index, 10*time.Second)

	// The old leader restarts with its state and catches up.
	e := h.start(l)
	if got := e.lastIdx.Load(); got < first.Index {
		t.Fatalf("restarted member has index %d, had %d", got, first.Index)
	}
	b := h.propose(via, h.req(via, fsm.Put("later", []byte("3"))), 30*time.Second)
	all := []int{0, 1, 2, 3}
	h.waitIndex(all, b.Index, 20*time.Second)
	d := h.digest(nl)
	for _, i := range all {
		if h.digest(i) != d {
			t.Fatalf("member %d differs after restart", i+1)
		}
	}
	h.applied.check(t, all)
}

func TestRestartKeepsState(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	var last consensus.Applied
	for j := range 6 {
		last = h.propose(j%4, h.req(j%4, fsm.Put(fmt.Sprintf("k%d", j), []byte("v"))), 10*time.Second)
	}
	all := []int{0, 1, 2, 3}
	h.waitIndex(all, last.Index, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before, err := h.engines[2].Record(ctx, last.Index)
	if err != nil {
		t.Fatal(err)
	}
	d := h.digest(0)
	for i := range all {
		h.stop(i)
	}
	// Member 3 stopped after storing its last decision and before storing
	// that decision's entries: the restart derives them again.
	st, err := openStore(h.dirs[2], h.c.Group)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.Exec(`DELETE FROM entries WHERE seq = (SELECT MAX(seq) FROM entries)`); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.entry(last.Index); ok {
		t.Fatal("entry still stored")
	}
	st.close()
	h.startAll()
	for _, i := range all {
		if got := h.engines[i].lastIdx.Load(); got != last.Index {
			t.Fatalf("member %d restarted at index %d, want %d", i+1, got, last.Index)
		}
		if h.digest(i) != d {
			t.Fatalf("member %d's state changed across the restart", i+1)
		}
	}
	// Stored certificate survives; records of old entries still verify.
	after, err := h.engines[2].Record(ctx, last.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsm.Verify(after); err != nil {
		t.Fatal(err)
	}
	if len(after.Certificate) != len(before.Certificate) {
		t.Fatalf("certificate changed across restart: %d vs %d", len(after.Certificate), len(before.Certificate))
	}
	// A proposer's spent sequence numbers stay spent: the replayed request is refused.
	q, _ := fsm.SignRequest(h.c.Keys[1], h.c.Group.ID(), 1, fsm.Put("k1", []byte("again")))
	r := h.propose(0, q.Encode(), 20*time.Second)
	if r.Result.Code != fsm.CodeReplay {
		t.Fatalf("replayed request: code %q, want replay", r.Result.Code)
	}
	more := h.propose(3, h.req(3, fsm.Put("new", nil)), 20*time.Second)
	h.waitIndex(all, more.Index, 10*time.Second)
}

// ProposeOp from many goroutines of one member: every request is applied,
// none refused as a replay for overtaking another.
func TestProposeOpConcurrent(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for p := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := contextWithin(20 * time.Second)
			defer cancel()
			a, err := h.engines[p%2].ProposeOp(ctx, fsm.Put(fmt.Sprintf("p%d", p), []byte("v")))
			if err == nil {
				err = a.Result.Err()
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A member that missed decisions and synchronized them drops their requests
// from SmartBFT's pool; otherwise their timeouts make it complain about a
// leader that ordered them (a ViewChange from a member with nothing pending).
func TestSyncedRequestsLeaveThePool(t *testing.T) {
	h := newHarness(t, 4)
	const blindOne = 3
	var blind, complained atomic.Bool
	h.opts[blindOne].observeRecv = func(_ uint64, b []byte) bool {
		if !blind.Load() {
			return false
		}
		f, err := decodeFrame(b)
		return err == nil && (f.kind == kindConsensus)
	}
	h.opts[blindOne].tamperSend = func(_ uint64, b []byte) [][]byte {
		if f, err := decodeFrame(b[4:]); err == nil && f.kind == kindConsensus {
			if m := consensusMsg(b); m != nil && m.GetViewChange() != nil {
				complained.Store(true)
			}
		}
		return [][]byte{b}
	}
	h.startAll()
	h.propose(0, h.req(0, fsm.Put("warm", nil)), 10*time.Second)

	// The blind member proposes; the others order it without it.
	blind.Store(true)
	done := make(chan consensus.Applied, 1)
	go func() {
		ctx, cancel := contextWithin(20 * time.Second)
		defer cancel()
		a, err := h.engines[blindOne].Propose(ctx, h.req(blindOne, fsm.Put("from-blind", nil)))
		if err != nil {
			t.Error(err)
		}
		done <- a
	}()
	waitFor(t, 10*time.Second, "the others to order the blind member's request", func() bool {
		return h.engines[0].lastIdx.Load() >= 2
	})
	blind.Store(false)
	h.propose(1, h.req(1, fsm.Put("after", nil)), 10*time.Second)
	a := <-done
	h.waitIndex([]int{blindOne}, a.Index+1, 30*time.Second) // it learns it lags from heartbeats, then synchronizes
	// Forward (0.5s) and complain (2s) timeouts would have fired by now.
	watch := time.Now().Add(4 * time.Second)
	for time.Now().Before(watch) {
		if complained.Load() {
			t.Fatal("the member that synchronized complained about the leader")
		}
		waitTick()
	}
}

func TestNewNamesTheWrongField(t *testing.T) {
	h := newHarness(t, 4)
	good := consensus.EngineConfig{Group: h.c.Group, Self: h.c.Keys[0], Dir: t.TempDir(), Net: h.c.Network(t, 0)}
	raft, _ := fsm.NewGroup("reviews", fsm.ModeRaft, 0, h.c.Group.Members)
	for field, mut := range map[string]func(*consensus.EngineConfig){
		"Group":   func(c *consensus.EngineConfig) { c.Group = raft },
		"Self":    func(c *consensus.EngineConfig) { c.Self = identity.PrivateKey{} },
		"Dir":     func(c *consensus.EngineConfig) { c.Dir = "" },
		"Net":     func(c *consensus.EngineConfig) { c.Net = nil },
		"MaxSkew": func(c *consensus.EngineConfig) { c.MaxSkew = -time.Second },
	} {
		c := good
		mut(&c)
		_, err := New(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestProposeByANonMember(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	outsider := bfttestKey(t, 0x77)
	q, err := fsm.SignRequest(outsider, h.c.Group.ID(), 1, fsm.Put("a", nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithin(5 * time.Second)
	defer cancel()
	if _, err := h.engines[0].Propose(ctx, q.Encode()); !errors.Is(err, consensus.ErrNotMember) {
		t.Fatalf("outsider's request: %v, want ErrNotMember", err)
	}
}

// A restart must be given the group definition the stored history started
// from or the one it reached: the machine replays from the first.
func TestRestartWithAnotherDefinitionIsRefused(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	h.propose(0, h.req(0, fsm.Put("a", nil)), 10*time.Second)
	h.stop(0)
	later, err := fsm.NewGroup(h.c.Group.Name, fsm.ModeBFT, 1, h.c.Group.Members)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), consensus.EngineConfig{Group: later, Self: h.c.Keys[0], Dir: h.dirs[0], Net: h.c.Network(t, 0)})
	var mm *fsm.MismatchError
	if !errors.As(err, &mm) || mm.Field != "epoch" || !strings.Contains(err.Error(), "EngineConfig.Group") {
		t.Fatalf("restart with epoch 1 over an epoch-0 history: %v", err)
	}
	// The right definition still starts it.
	h.start(0)
}

// After a membership change the group manager restarts a member with the
// definition the group was created with (its stored genesis): the member
// replays into the later epoch and takes part again under the node IDs and
// signing domain the running members use.
func TestRestartFromGenesisAfterRemoval(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := h.engines[0].ProposeOp(ctx, fsm.RemoveMember(h.c.Keys[3].Public(), 0, "left"))
	if err != nil || a.Result.Motion == "" {
		t.Fatalf("open removal: %+v %v", a, err)
	}
	for _, i := range []int{0, 1, 2} {
		if _, err := h.engines[i].ProposeOp(ctx, fsm.Vote(a.Result.Motion, true)); err != nil {
			t.Fatalf("member %d votes: %v", i+1, err)
		}
	}
	waitFor(t, 10*time.Second, "epoch 1 on member 1", func() bool { return h.engines[0].currentGroup().Epoch == 1 })
	h.stop(0)
	h.start(0) // h.c.Group is the epoch-0 definition
	if g := h.engines[0].currentGroup(); g.Epoch != 1 || g.IsMember(h.c.Keys[3].Public()) {
		t.Fatalf("restarted member is at %s, want epoch 1 without member 4", g)
	}
	r, err := h.engines[0].ProposeOp(ctx, fsm.Put("after", []byte("v")))
	if err != nil || r.Result.Code != fsm.CodeOK {
		t.Fatalf("propose via the restarted member: %+v %v", r, err)
	}
	stay := []int{0, 1, 2}
	h.waitIndex(stay, r.Index, 10*time.Second)
	for _, i := range stay[1:] {
		if h.digest(i) != h.digest(0) {
			t.Fatalf("member %d's state differs from member 1's", i+1)
		}
	}
}
