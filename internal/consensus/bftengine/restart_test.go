package bftengine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger-labs/SmartBFT/pkg/types"
	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// history writes a group's decisions into a member's store through the
// engine's own deliver and apply path (no network, no SmartBFT): every
// member's key is held here, so each decision carries its view leader's
// header and Quorum commit signatures of the node set in force, as a
// decision SmartBFT delivers does.
type history struct {
	tb     testing.TB
	cfg    consensus.EngineConfig
	opts   options
	e      *Engine
	priv   map[identity.PublicKey]identity.PrivateKey
	outer  identity.PrivateKey // a key the group adds by motion
	reqSeq map[identity.PublicKey]uint64
	seq    uint64
	t0     int64
}

func newHistory(tb testing.TB, opts options) *history {
	tb.Helper()
	var keys []identity.PrivateKey
	priv := map[identity.PublicKey]identity.PrivateKey{}
	for range 5 {
		k, err := identity.Generate(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, k)
		priv[k.Public()] = k
	}
	pubs := make([]identity.PublicKey, 4)
	for i := range pubs {
		pubs[i] = keys[i].Public()
	}
	g, err := fsm.NewGroup("restart", fsm.ModeBFT, 0, pubs)
	if err != nil {
		tb.Fatal(err)
	}
	opts.removedGrace = 0
	cfg := consensus.EngineConfig{Group: g, Self: keys[0], Dir: filepath.Join(tb.TempDir(), "m1"),
		MaxSkew: defaultMaxSkew, Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	h := &history{tb: tb, cfg: cfg, opts: opts, priv: priv, outer: keys[4], reqSeq: map[identity.PublicKey]uint64{},
		t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	h.e = h.load()
	// The writer's store skips fsyncs: what is measured is the restart.
	if _, err := h.e.st.db.Exec(`PRAGMA synchronous=OFF`); err != nil {
		tb.Fatal(err)
	}
	h.e.comm = newComm(h.e) // not started: node-set changes only update its links
	h.e.applying.Add(1)
	go h.e.applyLoop()
	return h
}

// load recovers an engine's state from the history's directory, as New
// does before it starts the network.
func (h *history) load() *Engine {
	h.tb.Helper()
	e, err := h.recover()
	if err != nil {
		h.tb.Fatalf("recover: %v", err)
	}
	return e
}

func (h *history) recover() (*Engine, error) {
	e := blankEngine(h.cfg, h.opts)
	if err := e.recoverState(context.Background()); err != nil {
		return nil, err
	}
	return e, nil
}

// stop ends the writer; the store can be loaded again.
func (h *history) stop() {
	close(h.e.done)
	h.e.applying.Wait()
	h.e.comm.cancel()
	if err := h.e.st.close(); err != nil {
		h.tb.Fatal(err)
	}
}

// op signs op as member k for the current epoch.
func (h *history) op(k identity.PublicKey, op fsm.Op) []byte {
	h.tb.Helper()
	h.reqSeq[k]++
	q, err := fsm.SignRequest(h.priv[k], h.e.currentGroup().ID(), h.reqSeq[k], op)
	if err != nil {
		h.tb.Fatal(err)
	}
	return q.Encode()
}

// decide delivers the next decision, holding items, and waits until it is
// applied.
func (h *history) decide(items ...[]byte) {
	h.tb.Helper()
	e := h.e
	h.seq++
	r := e.rosters().at(h.seq)
	view := h.seq / 50 // a view change now and then: another leader signs
	md, err := proto.Marshal(&protos.ViewMetadata{ViewId: view, LatestSequence: h.seq, DecisionsInView: h.seq % 50})
	if err != nil {
		h.tb.Fatal(err)
	}
	payload := batch{time: h.t0 + int64(h.seq)*int64(time.Millisecond), items: items}.encode()
	p := types.Proposal{Payload: payload, Metadata: md, VerificationSequence: int64(e.currentGroup().Epoch)}
	p.Header = h.priv[r.keys[r.leaderOf(view)]].Sign(e.proposalStatement(sha256.Sum256(payload), sha256.Sum256(md)))
	var sigs []types.Signature
	for _, id := range r.nodes[:r.quorum] {
		aux := binary.BigEndian.AppendUint64(nil, id)
		sigs = append(sigs, types.Signature{ID: id, Value: h.priv[r.keys[id]].Sign(e.commitStatement(p, aux)), Msg: aux})
	}
	e.deliver(p, sigs, false, true)
	if e.lastSeq != h.seq || e.applyState.Load()>>1 != h.seq {
		h.tb.Fatalf("decision %d not applied (stored %d)", h.seq, e.lastSeq)
	}
}

// members are the current members, sorted.
func (h *history) members() []identity.PublicKey { return h.e.currentGroup().Members }

// passMembership opens op (an add or a remove) and has every member vote
// yes until it passes.
func (h *history) passMembership(op fsm.Op) {
	h.tb.Helper()
	ms := h.members()
	h.decide(h.op(ms[0], op))
	name := fmt.Sprintf("#%d", h.e.lastIdx.Load())
	epoch := h.e.currentGroup().Epoch
	for _, k := range ms {
		if h.e.currentGroup().Epoch != epoch {
			return
		}
		h.decide(h.op(k, fsm.Vote(name, true)))
	}
	if h.e.currentGroup().Epoch == epoch {
		h.tb.Fatalf("membership motion %s did not pass", name)
	}
}

// mixed writes n decisions of kv writes and deletes, plain motions and
// votes, a member added and, later, one removed; some decisions hold
// several items and a barrier.
func (h *history) mixed(n int) {
	h.tb.Helper()
	for i := 0; h.seq < uint64(n); i++ {
		ms := h.members()
		k := ms[i%len(ms)]
		switch {
		case i == n/3:
			h.passMembership(fsm.AddMember(h.outer.Public(), 0, "grow"))
		case i == 2*n/3:
			h.passMembership(fsm.RemoveMember(ms[1], 0, "shrink"))
		case i%17 == 5:
			h.decide(h.op(k, fsm.OpenMotion(fmt.Sprintf("m%d", i), 2, 0, "motion")))
		case i%17 == 6:
			h.decide(h.op(k, fsm.Vote(fmt.Sprintf("m%d", i-1), true)), h.op(ms[(i+1)%len(ms)], fsm.Vote(fmt.Sprintf("m%d", i-1), false)))
		case i%11 == 3:
			h.decide(h.op(k, fsm.Delete(fmt.Sprintf("k%d", i%97))))
		case i%13 == 0:
			h.decide(h.op(k, fsm.Put(fmt.Sprintf("k%d", i%97), []byte{byte(i)})), h.e.barrier(), h.op(ms[(i+1)%len(ms)], fsm.Put("x", []byte(strings.Repeat("v", i%64)))))
		default:
			h.decide(h.op(k, fsm.Put(fmt.Sprintf("k%d", i%97), fmt.Appendf(nil, "value %d", i))))
		}
	}
}

// puts writes n decisions of one kv write each.
func (h *history) puts(n int) {
	h.tb.Helper()
	ms := h.members()
	for i := range n {
		h.decide(h.op(ms[i%len(ms)], fsm.Put(fmt.Sprintf("k%d", i%1000), fmt.Appendf(nil, "value %d", i))))
	}
}

// recovered is everything recoverState rebuilds, canonically encoded: two
// engines with equal bytes continue identically.
func recovered(e *Engine) []byte {
	var w wbuf
	w.bytes(e.m.Snapshot())
	for _, r := range e.rosters() {
		w.u64(r.from)
		w.bytes(r.group.Canonical())
		w.u64(r.next)
		w.u32(uint32(r.quorum))
		for _, id := range r.nodes {
			w.u64(id)
		}
		ids := make([]uint64, 0, len(r.keys))
		for id := range r.keys {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			w.u64(id)
			w.raw(r.keys[id].Bytes())
			w.u64(r.ids[r.keys[id]])
		}
	}
	mos := make([]string, 0, len(e.memberMo))
	for k := range e.memberMo {
		mos = append(mos, k)
	}
	slices.Sort(mos)
	for _, k := range mos {
		w.bytes([]byte(k))
	}
	w.u64(e.lastSeq)
	w.u64(e.nextIdx)
	w.u64(e.lastIdx.Load())
	w.u64(e.lastView.Load())
	w.u64(e.applyState.Load())
	w.bytes(e.currentGroup().Canonical())
	w.bytes(decisionOf(e.last.Proposal, e.last.Signatures).encode())
	return w.b
}

// BenchmarkRestart measures a member's restart (recovering its state from
// its store) after 20,000 decisions of one kv write each: "full" replays
// them all (no checkpoint, as a store written before checkpoints), and
// "checkpoint" loads the last checkpoint (every 1,024 decisions) and
// replays the decisions after it.
//
//	go test -run '^$' -bench Restart -benchtime 3x ./internal/consensus/bftengine/
func BenchmarkRestart(b *testing.B) {
	const n = 20_000
	for _, bc := range []struct {
		name  string
		every uint64
	}{{"full", 0}, {"checkpoint", checkpointDecisions}} {
		b.Run(bc.name, func(b *testing.B) {
			o := testOptions()
			o.checkpointEvery.decisions = bc.every
			h := newHistory(b, o)
			h.puts(n)
			h.stop()
			b.ResetTimer()
			for range b.N {
				e := h.load()
				if e.lastSeq != n {
					b.Fatalf("recovered %d decisions, want %d", e.lastSeq, n)
				}
				b.ReportMetric(float64(e.lastSeq-e.restored), "replayed")
				e.st.close()
			}
		})
	}
}

// checkpointed is a history of n mixed decisions with a checkpoint every
// `every` decisions, stopped; live is the writer's state when it stopped.
func checkpointed(t *testing.T, n int, every uint64) (h *history, live []byte) {
	t.Helper()
	o := testOptions()
	o.checkpointEvery.decisions, o.checkpointEvery.entries = every, 1<<20
	h = newHistory(t, o)
	h.mixed(n)
	h.e.mu.Lock()
	live = recovered(h.e)
	h.e.mu.Unlock()
	h.stop()
	return h, live
}

// exec runs SQL on the stopped history's store, as someone with write
// access to the directory but not the member's key would.
func (h *history) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	st, err := openStore(h.cfg.Dir, h.cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if _, err := st.db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func (h *history) body(t *testing.T, seq uint64) []byte {
	t.Helper()
	st, err := openStore(h.cfg.Dir, h.cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	b, ok, err := st.decisionBody(seq)
	if err != nil || !ok {
		t.Fatalf("decision %d: %v %v", seq, ok, err)
	}
	return b
}

// TestRestartFromCheckpointEqualsFullReplay: a history of kv writes and
// deletes, motions and votes, a member added and one removed (two node-set
// changes) is recovered from its checkpoint plus the decisions after it,
// and again by replaying everything; both give the writer's state, byte
// for byte (machine snapshot, node sets and IDs, open membership motions,
// last decision, indexes).
func TestRestartFromCheckpointEqualsFullReplay(t *testing.T) {
	h, live := checkpointed(t, 300, 64)
	e := h.load()
	if e.restored == 0 || e.restored == e.lastSeq {
		t.Fatalf("checkpoint at %d of %d: want one with decisions after it", e.cp.seq, e.lastSeq)
	}
	if len(e.rosters()) != 3 {
		t.Fatalf("%d node sets, want 3 (founders, grown, shrunk)", len(e.rosters()))
	}
	fromCP := recovered(e)
	e.st.close()

	h.exec(t, `DELETE FROM checkpoint`)
	f := h.load()
	if f.restored != 0 || f.cp.seq != f.lastSeq {
		t.Fatalf("full replay took no checkpoint at its end (at %d, last %d)", f.cp.seq, f.lastSeq)
	}
	full := recovered(f)
	f.st.close()
	if !slices.Equal(fromCP, live) {
		t.Fatal("state restored from the checkpoint differs from the writer's")
	}
	if !slices.Equal(full, live) {
		t.Fatal("state after full replay differs from the writer's")
	}
	// The checkpoint the full replay took at its end restores the same.
	again := h.load()
	if again.restored != again.lastSeq || !slices.Equal(recovered(again), live) {
		t.Fatal("state restored from the replay's own checkpoint differs")
	}
	again.st.close()
}

// TestRestartRefusesATamperedStore: each way of altering the store without
// the member's key fails the restart with ErrStoreCorrupt naming the group,
// whether the altered part lies after the checkpoint (verified in full),
// is the decision the checkpoint ends with, or is the checkpoint itself;
// with no checkpoint, full replay refuses an altered decision too.
func TestRestartRefusesATamperedStore(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, h *history, cp, last uint64)
		want   string
	}{
		{"decision-after-checkpoint-altered", func(t *testing.T, h *history, cp, last uint64) {
			b := h.body(t, cp+3)
			b[len(b)/3] ^= 1
			h.exec(t, `UPDATE decisions SET body = ? WHERE seq = ?`, b, int64(cp+3))
		}, "stored decision"},
		{"decision-after-checkpoint-removed", func(t *testing.T, h *history, cp, last uint64) {
			h.exec(t, `DELETE FROM decisions WHERE seq = ?`, int64(cp+3))
		}, "jump"},
		{"decisions-after-checkpoint-reordered", func(t *testing.T, h *history, cp, last uint64) {
			a, b := h.body(t, cp+2), h.body(t, cp+3)
			h.exec(t, `UPDATE decisions SET body = ? WHERE seq = ?`, b, int64(cp+2))
			h.exec(t, `UPDATE decisions SET body = ? WHERE seq = ?`, a, int64(cp+3))
		}, "sequence"},
		{"decision-replaced-by-another-groups", func(t *testing.T, h *history, cp, last uint64) {
			o := newHistory(t, testOptions()) // another group, same shape
			o.puts(int(cp + 3))
			b := o.body2(t, cp+3)
			o.stop()
			h.exec(t, `UPDATE decisions SET body = ? WHERE seq = ?`, b, int64(cp+3))
		}, "stored decision"},
		{"checkpoint-decision-altered", func(t *testing.T, h *history, cp, last uint64) {
			b := h.body(t, cp)
			b[len(b)/2] ^= 1
			h.exec(t, `UPDATE decisions SET body = ? WHERE seq = ?`, b, int64(cp))
		}, "was altered"},
		{"checkpoint-decision-removed", func(t *testing.T, h *history, cp, last uint64) {
			h.exec(t, `DELETE FROM decisions WHERE seq = ?`, int64(cp))
		}, "is missing"},
		{"checkpoint-state-altered", func(t *testing.T, h *history, cp, last uint64) {
			h.exec(t, `UPDATE checkpoint SET body = CAST(body AS BLOB) || x'00'`)
		}, "signature does not verify"},
		{"checkpoint-moved-forward", func(t *testing.T, h *history, cp, last uint64) {
			// A checkpoint claiming to cover more than it does: its body
			// (signed) would have to change.
			h.exec(t, `UPDATE checkpoint SET sig = x'00'`)
		}, "signature does not verify"},
		{"full-replay-decision-altered", func(t *testing.T, h *history, cp, last uint64) {
			h.exec(t, `DELETE FROM checkpoint`)
			b := h.body(t, 7)
			b[len(b)/3] ^= 1
			h.exec(t, `UPDATE decisions SET body = ? WHERE seq = ?`, b, 7)
		}, "stored decision 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, _ := checkpointed(t, 150, 64)
			cp, last := uint64(128), uint64(150)
			e := h.load()
			if e.restored != cp || e.lastSeq != last {
				t.Fatalf("checkpoint at %d, last %d; want %d, %d", e.cp.seq, e.lastSeq, cp, last)
			}
			e.st.close()
			c.tamper(t, h, cp, last)
			_, err := h.recover()
			switch {
			case err == nil:
				t.Fatal("restart accepted the tampered store")
			case !errors.Is(err, ErrStoreCorrupt):
				t.Fatalf("err %v, want ErrStoreCorrupt", err)
			case !strings.Contains(err.Error(), "group restart") || !strings.Contains(err.Error(), c.want):
				t.Fatalf("err %q, want it to name group restart and say %q", err, c.want)
			}
		})
	}
}

// body2 reads decision seq from a running history's store.
func (h *history) body2(t *testing.T, seq uint64) []byte {
	t.Helper()
	b, ok, err := h.e.st.decisionBody(seq)
	if err != nil || !ok {
		t.Fatalf("decision %d: %v %v", seq, ok, err)
	}
	return b
}

// TestCheckpointOfAnotherKeyIsNotUsed: a checkpoint validly signed by
// another key (the node's identity changed, or someone signed a state of
// their own) is not trusted: the whole history is replayed and verified.
func TestCheckpointOfAnotherKeyIsNotUsed(t *testing.T) {
	h, live := checkpointed(t, 150, 64)
	// A forged checkpoint: the real one with one kv value changed, signed
	// by a key that is not this member's.
	other, err := identity.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := h.load()
	e.st.close()
	f := blankEngine(h.cfg, h.opts)
	f.cfg.Self = other
	f.domain = e.domain
	st, err := openStore(h.cfg.Dir, h.cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	body, _, _, ok, err := st.checkpoint()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	c, err := decodeCheckpoint(body, e.domain)
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsm.Restore(c.state)
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(m.LastIndex()+1, fsm.Entry{Time: m.Clock() + 1}) // a different state
	c.state = m.Snapshot()
	forged := c.encode(e.domain)
	if err := st.putCheckpoint(c.seq, forged, other.Public(), other.Sign(f.checkpointStatement(forged))); err != nil {
		t.Fatal(err)
	}
	st.close()
	r := h.load()
	defer r.st.close()
	if r.restored != 0 || !slices.Equal(recovered(r), live) {
		t.Fatal("restart used a checkpoint signed by another key")
	}
}

// TestClusterMemberRestartsFromItsCheckpoint: in a running group (real
// SmartBFT, TLS), a member that took checkpoints restarts from its last
// one, replays and verifies the decisions SmartBFT delivered after it,
// reaches the others' state, and decides again.
func TestClusterMemberRestartsFromItsCheckpoint(t *testing.T) {
	h := newHarness(t, 4)
	for i := range h.opts {
		h.opts[i].checkpointEvery.decisions = 4
	}
	h.startAll()
	var last consensus.Applied
	for j := range 10 {
		op := fsm.Put(fmt.Sprintf("k%d", j), []byte("v"))
		if j == 5 {
			op = fsm.OpenMotion("m", 2, 0, "text")
		}
		last = h.propose(j%4, h.req(j%4, op), 10*time.Second)
	}
	all := []int{0, 1, 2, 3}
	h.waitIndex(all, last.Index, 10*time.Second)
	h.stop(2)
	e := h.start(2)
	if e.restored == 0 {
		t.Fatal("the restarted member loaded no checkpoint")
	}
	b := h.propose(2, h.req(2, fsm.Vote("m", true)), 20*time.Second)
	h.waitIndex(all, b.Index, 20*time.Second)
	d := h.digest(0)
	for _, i := range all {
		if h.digest(i) != d {
			t.Fatalf("member %d differs after the restart", i+1)
		}
	}
	h.applied.check(t, all)
}

// TestDecisionBeforeCheckpointDoesNotReachTheState: a decision the
// checkpoint covers is not read at start (ADR 0026), so altering it cannot
// change the restored state; the next full replay (no checkpoint) refuses
// it.
func TestDecisionBeforeCheckpointDoesNotReachTheState(t *testing.T) {
	h, live := checkpointed(t, 150, 64)
	b := h.body(t, 40)
	b[len(b)/3] ^= 1
	h.exec(t, `UPDATE decisions SET body = ? WHERE seq = ?`, b, 40)
	e := h.load()
	if e.restored != 128 || !slices.Equal(recovered(e), live) {
		t.Fatalf("restored from %d a state that differs from the writer's", e.restored)
	}
	e.st.close()
	h.exec(t, `DELETE FROM checkpoint`)
	if _, err := h.recover(); !errors.Is(err, ErrStoreCorrupt) || !strings.Contains(err.Error(), "stored decision 40") {
		t.Fatalf("full replay: err %v, want ErrStoreCorrupt at decision 40", err)
	}
}
