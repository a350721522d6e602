package bftengine

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/hyperledger-labs/SmartBFT/pkg/types"
	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// handleFrame dispatches one frame from member l.id (the connection proved
// its key, so the sender is never taken from the frame).
func (e *Engine) handleFrame(l *link, f frame) {
	if seq := l.removedAt.Load(); seq != 0 {
		e.serveRemoved(l, seq, f)
		return
	}
	switch f.kind {
	case kindConsensus:
		m := &protos.Message{}
		if err := proto.Unmarshal(f.body, m); err != nil {
			e.evidence(l.key, "malformed-message", err.Error())
			return
		}
		if c := e.cons(); c != nil && e.self.Load() != 0 && e.screen(l, m) {
			c.HandleMessage(l.id, m)
		}
	case kindRequest:
		if c := e.cons(); c != nil && e.self.Load() != 0 && e.admitForwarded(l, f.body) {
			c.HandleRequest(l.id, f.body)
		}
	case kindRefusal:
		e.takeRefusal(l, f.ref)
	case kindAttest:
		e.takeAttests(l.id, f.attests)
	case kindAttestReq:
		if !l.allowServe() {
			return
		}
		if x, ok, err := e.st.entry(f.seq); err == nil && ok && x.group.IsMember(e.cfg.Self.Public()) {
			a := fsm.Attest(e.cfg.Self, x.group, f.seq, x.entry, x.result)
			e.comm.send(l.id, encodeFrame(frame{kind: kindAttest, attests: []attest{{index: f.seq, sig: a.Sig}}}))
		}
	case kindHeightReq:
		e.dmu.Lock()
		h := e.lastSeq
		e.dmu.Unlock()
		e.comm.send(l.id, encodeFrame(frame{kind: kindHeight, seq: h}))
	case kindDecisionReq:
		if !l.allowServe() {
			return
		}
		d, ok, err := e.st.decisionAt(f.seq)
		if err != nil || !ok {
			d = nil
		}
		e.comm.send(l.id, encodeFrame(frame{kind: kindDecision, seq: f.seq, dec: d}))
	case kindHeight, kindDecision:
		if p := e.syncIn.Load(); p != nil {
			select {
			case *p <- syncMsg{from: l.id, f: f}:
			default:
			}
		}
	case kindWitness:
		e.checkWitness(l, f.wit)
	}
}

// serveRemoved answers a member removed at decision seq, while its link
// lingers (comm.lingerLocked): its height requests with at most seq, and its
// requests for decisions up to seq, which it held or was entitled to as a
// member; at most servedPerSecond a second, as for a member. It learns of
// its removal by fetching decision seq and steps out. Nothing else it sends
// is read: it no longer votes, proposes, attests or forwards requests, and
// it is served no decision after its removal.
func (e *Engine) serveRemoved(l *link, seq uint64, f frame) {
	switch f.kind {
	case kindHeightReq:
		if !l.allowServe() {
			return
		}
		e.dmu.Lock()
		h := min(e.lastSeq, seq)
		e.dmu.Unlock()
		e.comm.send(l.id, encodeFrame(frame{kind: kindHeight, seq: h}))
	case kindDecisionReq:
		if !l.allowServe() {
			return
		}
		var d *decision
		if f.seq <= seq {
			if x, ok, err := e.st.decisionAt(f.seq); err == nil && ok {
				d = x
			}
		}
		e.comm.send(l.id, encodeFrame(frame{kind: kindDecision, seq: f.seq, dec: d}))
	}
}

// screen refuses, before SmartBFT sees them, the messages a lying member can
// make that SmartBFT would not attribute to it: a commit vote carrying another
// member's signer ID (SmartBFT does not compare it with the sender, so a
// relayed vote could count twice), a commit whose signature is not its
// signer's, and a pre-prepare from a member that does not lead its view. It
// also passes each pre-prepare of a view's leader on as a witness.
func (e *Engine) screen(l *link, m *protos.Message) bool {
	switch {
	case m.GetCommit() != nil:
		c := m.GetCommit()
		s := c.GetSignature()
		if s == nil {
			e.evidence(l.key, "malformed-message", "commit without a signature")
			return false
		}
		ok := e.verifyCommitDigest(s.Signer, s.Value, s.Msg, c.Digest) == nil
		switch {
		case s.Signer != l.id && ok:
			e.evidence(l.key, "replay", fmt.Sprintf("relayed member %d's commit for view %d seq %d as its own", s.Signer, c.View, c.Seq))
			return false
		case s.Signer != l.id:
			e.evidence(l.key, "forged-vote", fmt.Sprintf("commit for view %d seq %d claims signer %d", c.View, c.Seq, s.Signer))
			return false
		case !ok:
			e.evidence(l.key, "bad-signature", fmt.Sprintf("commit for view %d seq %d: signature does not verify", c.View, c.Seq))
			return false
		}
	case m.GetPrePrepare() != nil:
		pp := m.GetPrePrepare()
		r, known := e.rosterAt(pp.Seq)
		if !known {
			// A membership change this member has not applied yet may
			// decide who leads at pp.Seq: SmartBFT checks the sender
			// against the leader of its own view.
			return true
		}
		if r.leaderOf(pp.View) != l.id {
			e.evidence(l.key, "replay", fmt.Sprintf("pre-prepare for view %d seq %d from a member that does not lead it", pp.View, pp.Seq))
			return false
		}
		if p := pp.GetProposal(); p != nil {
			w := witness{view: pp.View, seq: pp.Seq, payloadHash: sha256.Sum256(p.Payload), mdHash: sha256.Sum256(p.Metadata), sig: p.Header}
			if e.recordWitness(r, w) {
				e.comm.broadcast(encodeFrame(frame{kind: kindWitness, wit: w}))
			}
		}
	case m.GetViewData() != nil:
		if vd := m.GetViewData(); vd.Signer != l.id {
			e.evidence(l.key, "forged-vote", fmt.Sprintf("view data claims signer %d", vd.Signer))
			return false
		}
	}
	return true
}

func (e *Engine) verifyCommitDigest(id uint64, value, aux []byte, digest string) error {
	k, ok := e.keyOf(id)
	if !ok {
		return fmt.Errorf("bftengine: commit signer %d is not a member", id)
	}
	var w wbuf
	w.bytes([]byte(digest))
	w.bytes(aux)
	if !e.sigOK(k, e.signed(commitMagic, w.b), value) {
		return fmt.Errorf("bftengine: commit signature is not %d's", id)
	}
	return nil
}

// recordWitness keeps what the leader of w.view proposed at w.seq, if its
// header signature verifies; two different proposals are equivocation. It
// reports whether w was new here (and so worth passing on).
func (e *Engine) recordWitness(r *roster, w witness) bool {
	leader := r.leaderOf(w.view)
	leaderKey, _ := e.keyOf(leader)
	if !e.sigOK(leaderKey, e.proposalStatement(w.payloadHash, w.mdHash), w.sig) {
		return false // VerifyProposal reports a bad header on a pre-prepare
	}
	k := [2]uint64{w.view, w.seq}
	e.screenMu.Lock()
	old, seen := e.wits[k]
	if !seen {
		if len(e.wits) >= witnessesKept {
			for x := range e.wits {
				if x[1]+witnessesKept/2 < w.seq || x[0] < w.view {
					delete(e.wits, x)
				}
			}
			if len(e.wits) >= witnessesKept {
				clear(e.wits)
			}
		}
		e.wits[k] = w
	}
	e.screenMu.Unlock()
	if seen && (old.payloadHash != w.payloadHash || old.mdHash != w.mdHash) {
		e.evidence(leaderKey, "equivocation", fmt.Sprintf("leader signed two proposals for view %d seq %d", w.view, w.seq))
		// Proven equivocation: replace the leader now rather than after the
		// request timeouts.
		if c := e.cons(); c != nil && e.leaderID() == leader {
			c.Complain(w.view, true)
		}
	}
	return !seen
}

func (e *Engine) checkWitness(l *link, w witness) {
	r, known := e.rosterAt(w.seq)
	if !known {
		return // who leads at w.seq may still change here
	}
	leaderKey, _ := e.keyOf(r.leaderOf(w.view))
	if !e.sigOK(leaderKey, e.proposalStatement(w.payloadHash, w.mdHash), w.sig) {
		e.evidence(l.key, "bad-signature", fmt.Sprintf("witness for view %d seq %d does not carry the leader's signature", w.view, w.seq))
		return
	}
	e.recordWitness(r, w)
}

func (e *Engine) takeAttests(from uint64, as []attest) {
	last := e.lastIdx.Load()
	e.attMu.Lock()
	defer e.attMu.Unlock()
	for _, a := range as {
		if a.index == 0 || a.index > last+attestWindow {
			continue
		}
		byID := e.atts[a.index]
		if byID == nil {
			byID = map[uint64][]byte{}
			e.atts[a.index] = byID
		}
		byID[from] = a.sig
	}
	if len(e.atts) > 2*attestWindow {
		for i := range e.atts {
			if i+attestWindow < last {
				delete(e.atts, i)
			}
		}
	}
	close(e.attWake)
	e.attWake = make(chan struct{})
}

type syncMsg struct {
	from uint64
	f    frame
}

// sync is SmartBFT's Synchronizer (and a learner's catch-up): ask every
// member its height, then fetch the missing decisions in order from members
// that claim them, verify each against the node set in force at its
// sequence (leader's header signature, Quorum distinct members' commit
// signatures over the proposal) and deliver it; a decision that may change
// that node set is applied before the next is verified (deliver waits, as
// for Deliver). It returns within syncBudget the last decision it reached
// and whether the node set changed meanwhile; a member that claims
// decisions it cannot serve costs a timeout.
func (e *Engine) sync() (last types.Decision, nodesChanged bool) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	in := make(chan syncMsg, 256)
	e.syncIn.Store(&in)
	defer e.syncIn.Store(nil)
	deadline := time.Now().Add(syncBudget)

	// Rounds: ask heights, fetch what they offer, and ask again while a
	// round brought anything. The members may decide the next sequence while
	// this one is fetched, and SmartBFT drops the votes for it that arrive
	// meanwhile; without another round an idle group would leave this member
	// one decision behind until the next proposal.
	changed := false
	for time.Now().Before(deadline) && !e.isClosed() {
		progressed, nodesChanged := e.syncRound(in, deadline)
		changed = changed || nodesChanged
		if !progressed {
			break
		}
	}
	e.dmu.Lock()
	defer e.dmu.Unlock()
	return e.last, changed
}

// syncRound asks every member its height, then fetches and delivers the
// decisions they claim in order, until none of them serves the next one or
// the deadline passes. It reports whether it delivered any, and whether one
// of them changed the node set.
func (e *Engine) syncRound(in chan syncMsg, deadline time.Time) (progressed, changed bool) {
	drain(in)
	heights := e.askHeights(in, min(syncHeightWait, time.Until(deadline)))
	for time.Now().Before(deadline) && !e.isClosed() {
		e.dmu.Lock()
		next := e.lastSeq + 1
		e.dmu.Unlock()
		got := false
		for id, h := range heights {
			if h < next {
				continue
			}
			if !time.Now().Before(deadline) {
				break
			}
			if d := e.fetch(in, id, next, deadline); d != nil {
				if e.deliver(d.proposal(), d.signatures(), true, false) {
					changed = true
				}
				got = true
				break
			}
		}
		if !got {
			return progressed, changed
		}
		progressed = true
	}
	return progressed, changed
}

// askHeights asks every member its last decided sequence and collects the
// answers that arrive on in within wait, by member ID.
func (e *Engine) askHeights(in chan syncMsg, wait time.Duration) map[uint64]uint64 {
	e.comm.broadcast(encodeFrame(frame{kind: kindHeightReq}))
	heights := map[uint64]uint64{}
	t := time.NewTimer(wait)
	defer t.Stop()
	for peers := len(e.comm.ids()); len(heights) < peers; {
		select {
		case m := <-in:
			if m.f.kind == kindHeight {
				heights[m.from] = m.f.seq
			}
		case <-t.C:
			return heights
		case <-e.done:
			return heights
		}
	}
	return heights
}

// drain discards what an earlier round left unread.
func drain(in chan syncMsg) {
	for {
		select {
		case <-in:
		default:
			return
		}
	}
}

// fetch asks member id for decision seq and waits for it until
// syncFetchWait or the deadline, whichever comes first.
func (e *Engine) fetch(in chan syncMsg, id, seq uint64, deadline time.Time) *decision {
	e.comm.send(id, encodeFrame(frame{kind: kindDecisionReq, seq: seq}))
	t := time.NewTimer(min(syncFetchWait, time.Until(deadline)))
	defer t.Stop()
	for {
		select {
		case m := <-in:
			if m.from != id || m.f.kind != kindDecision || m.f.seq != seq {
				continue
			}
			if m.f.dec == nil {
				return nil
			}
			if err := e.verifyDecision(seq, m.f.dec); err != nil {
				k, _ := e.keyOf(id)
				e.evidence(k, "bad-decision", fmt.Sprintf("served decision %d: %v", seq, err))
				return nil
			}
			return m.f.dec
		case <-t.C:
			return nil
		case <-e.done:
			return nil
		}
	}
}

func (e *Engine) verifyDecision(seq uint64, d *decision) error {
	p := d.proposal()
	md := &protos.ViewMetadata{}
	if err := proto.Unmarshal(p.Metadata, md); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if md.LatestSequence != seq {
		return fmt.Errorf("sequence %d, asked for %d", md.LatestSequence, seq)
	}
	// The node set in force at seq is known: every earlier decision that
	// could change it was applied before deliver returned.
	r, _ := e.rosterAt(seq)
	lk, _ := e.keyOf(r.leaderOf(md.ViewId))
	if !e.sigOK(lk, e.proposalStatement(sha256.Sum256(p.Payload), sha256.Sum256(p.Metadata)), p.Header) {
		return fmt.Errorf("header is not view %d's leader's signature", md.ViewId)
	}
	if _, err := decodeBatch(p.Payload); err != nil {
		return err
	}
	seen := map[uint64]bool{}
	for _, s := range d.sigs {
		if seen[s.id] || !r.has(s.id) {
			continue // a repeat, or not a member at seq: does not count
		}
		if err := e.verifyCommit(s.id, s.value, s.msg, p); err != nil {
			return err
		}
		seen[s.id] = true
	}
	if len(seen) < r.quorum {
		return fmt.Errorf("%d commit signatures of members, need %d", len(seen), r.quorum)
	}
	return nil
}
