package bftengine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
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
	cfg := consensus.EngineConfig{Group: g, Self: keys[0], Dir: filepath.Join(tb.TempDir(), "m1"),
		MaxSkew: defaultMaxSkew, Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	h := &history{tb: tb, cfg: cfg, opts: opts, priv: priv, outer: keys[4], reqSeq: map[identity.PublicKey]uint64{},
		t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	h.e = h.load()
	// The writer's store skips fsyncs: what is measured is the restart.
	if _, err := h.e.st.db.Exec(`PRAGMA synchronous=OFF`); err != nil {
		tb.Fatal(err)
	}
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
				b.ReportMetric(float64(e.lastSeq-e.cp.seq), "replayed")
				e.st.close()
			}
		})
	}
}
