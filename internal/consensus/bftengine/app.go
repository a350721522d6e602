package bftengine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/hyperledger-labs/SmartBFT/pkg/types"
	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Domain separation of everything a member signs for the engine (the fsm
// signs requests and attestations with its own magics).
const (
	commitMagic   = "treaty/bft/commit/v1\x00"   // SmartBFT consenter signature: group ID, proposal digest, aux
	dataMagic     = "treaty/bft/data/v1\x00"     // SmartBFT view-change data
	proposalMagic = "treaty/bft/proposal/v1\x00" // the leader's header: group ID, payload hash, metadata hash
)

// app is the engine as SmartBFT sees it: Application, Assembler, Signer,
// Verifier, RequestInspector, MembershipNotifier and Synchronizer. It is a
// separate type so that none of these methods join Engine's API.
type app struct{ e *Engine }

// --- Signer ---

func (a app) Sign(data []byte) []byte {
	return a.e.cfg.Self.Sign(a.e.signed(dataMagic, data))
}

// SignProposal signs the proposal's digest with the auxiliary data SmartBFT
// passes (the prepares this member saw); Msg carries that data unchanged.
func (a app) SignProposal(p types.Proposal, aux []byte) *types.Signature {
	return &types.Signature{ID: a.e.conf.SelfID, Value: a.e.cfg.Self.Sign(a.e.commitStatement(p, aux)), Msg: aux}
}

// --- Verifier ---

func (a app) VerifySignature(s types.Signature) error {
	k, ok := a.e.keyOf(s.ID)
	if !ok {
		return fmt.Errorf("bftengine: signer %d is not a member", s.ID)
	}
	if !k.Verify(a.e.signed(dataMagic, s.Msg), s.Value) {
		return fmt.Errorf("bftengine: view data signature is not %d's", s.ID)
	}
	return nil
}

func (a app) VerifyConsenterSig(s types.Signature, p types.Proposal) ([]byte, error) {
	if err := a.e.verifyCommit(s.ID, s.Value, s.Msg, p); err != nil {
		return nil, err
	}
	return s.Msg, nil
}

func (a app) AuxiliaryData(msg []byte) []byte { return msg }

// VerificationSequence is the group's current epoch: requests are checked
// against it (checkItem), so SmartBFT prunes its pool when it changes, and
// a proposal carries the epoch it was assembled in (AssembleProposal).
func (a app) VerificationSequence() uint64 {
	if a.e.opts.verSeqZero {
		return 0
	}
	return a.e.currentGroup().Epoch
}

func (a app) RequestsFromProposal(p types.Proposal) []types.RequestInfo {
	b, err := decodeBatch(p.Payload)
	if err != nil {
		return nil
	}
	infos := make([]types.RequestInfo, 0, len(b.items))
	for _, it := range b.items {
		infos = append(infos, requestInfo(it))
	}
	return infos
}

func (a app) VerifyRequest(item []byte) (types.RequestInfo, error) {
	if err := a.e.checkItem(item); err != nil {
		return types.RequestInfo{}, err
	}
	return requestInfo(item), nil
}

// VerifyProposal runs on every follower before it prepares: the header is the
// leader's signature over this payload and metadata, the time stamp is not
// ahead of local time by more than MaxSkew, and every item is a request a
// member signed for this group (or a barrier). A failure is evidence against
// the leader of the proposal's view.
func (a app) VerifyProposal(p types.Proposal) ([]types.RequestInfo, error) {
	e := a.e
	md := &protos.ViewMetadata{}
	if err := proto.Unmarshal(p.Metadata, md); err != nil {
		return nil, fmt.Errorf("bftengine: proposal metadata: %w", err)
	}
	r, _ := e.rosterAt(md.LatestSequence) // known: SmartBFT delivered every decision before it
	lk, _ := e.keyOf(r.leaderOf(md.ViewId))
	if !e.sigOK(lk, e.proposalStatement(sha256.Sum256(p.Payload), sha256.Sum256(p.Metadata)), p.Header) {
		e.evidence(lk, "bad-proposal-signature", fmt.Sprintf("view %d seq %d: header is not the leader's signature", md.ViewId, md.LatestSequence))
		return nil, errors.New("bftengine: proposal header is not the leader's signature")
	}
	b, err := decodeBatch(p.Payload)
	if err != nil {
		e.evidence(lk, "malformed-proposal", err.Error())
		return nil, err
	}
	if err := fsm.CheckProposedTime(b.time, e.now().UnixNano(), int64(e.cfg.MaxSkew)); err != nil {
		e.evidence(lk, "time-skew", err.Error())
		return nil, err
	}
	if i, err := e.checkItems(b.items); err != nil {
		if errors.Is(err, ErrStale) {
			// Signed in good faith before a membership change. A leader of
			// this version leaves it out (it applied the change before it
			// assembles); one built before that rule does not, and is not
			// to blame for it.
			e.log.Info("bftengine: proposal holds a request for an earlier epoch", "view", md.ViewId, "seq", md.LatestSequence, "item", i)
			return nil, err
		}
		e.evidence(lk, "forged-request", fmt.Sprintf("view %d seq %d item %d: %v", md.ViewId, md.LatestSequence, i, err))
		return nil, err
	}
	infos := make([]types.RequestInfo, 0, len(b.items))
	seen := make(map[types.RequestInfo]bool, len(b.items))
	for i, it := range b.items {
		info := requestInfo(it)
		if seen[info] {
			e.evidence(lk, "duplicate-request", fmt.Sprintf("view %d seq %d item %d repeats %s", md.ViewId, md.LatestSequence, i, info.String()))
			return nil, fmt.Errorf("bftengine: proposal repeats request %s", info.String())
		}
		seen[info] = true
		infos = append(infos, info)
	}
	return infos, nil
}

// --- RequestInspector ---

func (a app) RequestID(item []byte) types.RequestInfo { return requestInfo(item) }

// requestInfo names an item: a request by proposer and sequence number (the
// fsm's replay key) and a short hash of its bytes, so that two different
// requests with one number (one of them forged) are not taken for each other
// by SmartBFT's pool; a barrier by its maker and nonce. SmartBFT asks often,
// so the fields are read at their fixed offsets, not decoded (checkItem
// decodes).
func requestInfo(item []byte) types.RequestInfo {
	h := sha256.Sum256(item)
	if isBarrier(item) {
		k := item[len(barrierMagic) : len(barrierMagic)+32]
		return types.RequestInfo{ClientID: "barrier:" + hex.EncodeToString(k), ID: hex.EncodeToString(item[len(barrierMagic)+32:])}
	}
	const proposerAt = len(requestMagic) + 32
	if len(item) < proposerAt+32+8 || string(item[:len(requestMagic)]) != requestMagic {
		return types.RequestInfo{ClientID: "malformed", ID: hex.EncodeToString(h[:8])}
	}
	seq := binary.BigEndian.Uint64(item[proposerAt+32:])
	return types.RequestInfo{ClientID: hex.EncodeToString(item[proposerAt : proposerAt+32]), ID: strconv.FormatUint(seq, 10) + "/" + hex.EncodeToString(h[:8])}
}

// requestMagic is fsm's wire magic of a request (fsm.DecodeRequest checks it).
const requestMagic = "treaty/consensus/request/v1\x00"

// --- MembershipNotifier ---

// MembershipChange reports whether the last decision changed the node set:
// SmartBFT then skips its checks that compare a proposal's previous commit
// signatures with the node set.
func (a app) MembershipChange() bool {
	e := a.e
	e.dmu.Lock()
	seq := e.lastSeq
	e.dmu.Unlock()
	rs := e.rosters()
	return len(rs) > 1 && rs.last().from == seq+1
}

// --- Assembler ---

// AssembleProposal runs on the leader: it stamps the batch with its clock and
// the current epoch, and signs payload and metadata into the header, so
// that a follower can prove what the leader proposed (see witness).
// Requests for an earlier epoch (submitted here just before a change
// applied) leave the batch and the pool: every member would refuse them. A
// batch left empty holds a barrier instead.
func (a app) AssembleProposal(metadata []byte, items [][]byte) types.Proposal {
	e := a.e
	g := e.currentGroup()
	epoch, id := g.Epoch, g.ID()
	if e.opts.verSeqZero {
		epoch = 0
	}
	items = slices.DeleteFunc(items, func(it []byte) bool {
		// The group ID follows the magic; only another one needs decoding.
		const at = len(requestMagic)
		if len(it) >= at+len(id) && string(it[at:at+len(id)]) == string(id[:]) || !e.isStale(it) {
			return false
		}
		if c := e.cons(); c != nil && c.Pool != nil {
			_ = c.Pool.RemoveRequest(requestInfo(it)) // absent: pruned meanwhile
		}
		return true
	})
	if len(items) == 0 {
		items = [][]byte{e.barrier()} // a batch is never empty (decodeBatch)
	}
	payload := batch{time: e.now().UnixNano(), items: items}.encode()
	p := types.Proposal{Payload: payload, Metadata: metadata, VerificationSequence: int64(epoch)}
	p.Header = e.cfg.Self.Sign(e.proposalStatement(sha256.Sum256(payload), sha256.Sum256(metadata)))
	return p
}

// --- Application ---

// Deliver stores the decision; if it changed the node set (it is then
// applied before Deliver returns), SmartBFT reconfigures to the new one, or
// shuts down if this member left it.
func (a app) Deliver(p types.Proposal, sigs []types.Signature) types.Reconfig {
	if a.e.opts.beforeDeliver != nil {
		a.e.opts.beforeDeliver()
	}
	if !a.e.deliver(p, sigs, true, false) {
		return types.Reconfig{}
	}
	return types.Reconfig{InLatestDecision: true, CurrentNodes: slices.Clone(a.e.roster().nodes), CurrentConfig: a.e.conf}
}

// --- Synchronizer ---

// Sync tells SmartBFT when the node set changed among the decisions it
// fetched, so that it reconfigures. SmartBFT also syncs inside Start
// (SyncOnStart), before the engine holds it: a member that restarts after
// missing a change must not run on with the node set it stopped with. It
// reports the same node set when SmartBFT's controller syncs instead of
// delivering a decision it already holds (bftLogger): rebuilt, the
// controller does not block on the view that is gone. A closing engine
// reports none: SmartBFT would rebuild what Close stops.
func (a app) Sync() types.SyncResponse {
	if a.e.opts.beforeSync != nil {
		a.e.opts.beforeSync()
	}
	last, changed := a.e.sync()
	rebuild := a.e.redeliver.Swap(false)
	if rebuild {
		a.e.log.Info("bftengine: SmartBFT synced instead of delivering a decision it held; rebuilding its components", "event", "consensus.bft.rebuild")
	}
	resp := types.SyncResponse{Latest: last}
	if (changed || rebuild) && !a.e.isClosed() {
		resp.Reconfig = types.ReconfigSync{InReplicatedDecisions: true, CurrentNodes: slices.Clone(a.e.roster().nodes), CurrentConfig: a.e.conf}
	}
	return resp
}

// --- statements ---

// signed binds data to the group for its whole life: the ID of the
// definition it started from, whatever epoch it is in, so that a decision
// verifies the same before and after a membership change.
func (e *Engine) signed(magic string, data []byte) []byte {
	gid := e.domain
	out := make([]byte, 0, len(magic)+len(gid)+len(data))
	return append(append(append(out, magic...), gid[:]...), data...)
}

func (e *Engine) commitStatement(p types.Proposal, aux []byte) []byte {
	d := p.Digest()
	var w wbuf
	w.bytes([]byte(d))
	w.bytes(aux)
	return e.signed(commitMagic, w.b)
}

func (e *Engine) proposalStatement(payload, md [32]byte) []byte {
	return e.signed(proposalMagic, append(payload[:], md[:]...))
}

func (e *Engine) verifyCommit(id uint64, value, aux []byte, p types.Proposal) error {
	k, ok := e.keyOf(id)
	if !ok {
		return fmt.Errorf("bftengine: commit signer %d is not a member", id)
	}
	if !e.sigOK(k, e.commitStatement(p, aux), value) {
		return fmt.Errorf("bftengine: commit signature is not %d's", id)
	}
	return nil
}

// checkItems runs checkItem on every item, on up to GOMAXPROCS goroutines
// (signature checks dominate a follower's work on a large batch), and returns
// the first failing item's position and error; an item that is only stale
// (ErrStale, no one to blame) does not hide a later one that is forged.
func (e *Engine) checkItems(items [][]byte) (int, error) {
	workers := min(runtime.GOMAXPROCS(0), len(items)/8+1)
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(items); i += workers {
				errs[i] = e.checkItem(items[i])
			}
		}()
	}
	wg.Wait()
	stale := -1
	for i, err := range errs {
		switch {
		case err == nil:
		case !errors.Is(err, ErrStale):
			return i, err
		case stale < 0:
			stale = i
		}
	}
	if stale >= 0 {
		return stale, errs[stale]
	}
	return 0, nil
}

// checkItem accepts a barrier or a request that decodes, names this group's
// current epoch, comes from a member and carries that member's signature.
// A request that a member of an earlier epoch signed for that epoch is
// ErrStale; one that names an earlier epoch but fails those checks is
// forged like any other.
func (e *Engine) checkItem(item []byte) error {
	if isBarrier(item) {
		return nil
	}
	q, err := fsm.DecodeRequest(item)
	if err != nil {
		return err
	}
	g := e.currentGroup()
	if q.Group == g.ID() {
		return e.checkSigned(item, q, g)
	}
	old, stale := e.staleGroup(q.Group)
	if !stale {
		return fmt.Errorf("bftengine: request is for group %s, not %s", q.Group, g.ID())
	}
	if err := e.checkSigned(item, q, old); err != nil {
		return fmt.Errorf("bftengine: request for epoch %d: %w", old.Epoch, err)
	}
	return fmt.Errorf("bftengine: request is for group %s, not %s (epoch %d): %w", q.Group, g.ID(), g.Epoch, ErrStale)
}

// checkSigned checks that q (encoded as item) comes from a member of g and
// carries its signature.
func (e *Engine) checkSigned(item []byte, q fsm.Request, g fsm.Group) error {
	if !g.IsMember(q.Proposer) {
		return fmt.Errorf("bftengine: proposer %s: %w", q.Proposer.Short(), consensus.ErrNotMember)
	}
	h := sha256.Sum256(item)
	e.verMu.Lock()
	ok := e.verified[h]
	e.verMu.Unlock()
	if ok {
		return nil
	}
	if !q.VerifySignature() {
		return fmt.Errorf("bftengine: request signature is not %s's", q.Proposer.Short())
	}
	e.markVerified(h)
	return nil
}

// sigOK is k.Verify with a memory: SmartBFT and the screen check one commit
// vote or proposal header several times (screen, vote counting, witnesses,
// proposal verification), and honest relays are byte-identical (ed25519 is
// deterministic), so each distinct (key, message, signature) is verified once.
func (e *Engine) sigOK(k identity.PublicKey, msg, sig []byte) bool {
	hm := sha256.Sum256(msg)
	hh := sha256.New()
	hh.Write(k.Bytes())
	hh.Write(hm[:])
	hh.Write(sig)
	var h [32]byte
	hh.Sum(h[:0])
	e.verMu.Lock()
	ok := e.verified[h]
	e.verMu.Unlock()
	if ok {
		return true
	}
	if !k.Verify(msg, sig) {
		return false
	}
	e.markVerified(h)
	return true
}

func (e *Engine) markVerified(h [32]byte) {
	e.verMu.Lock()
	defer e.verMu.Unlock()
	if len(e.verified) >= verifiedKept {
		clear(e.verified)
	}
	e.verified[h] = true
}

// keyOf is the key of node ID id: any ID ever assigned, since decisions
// carry the signatures of members that have left since.
func (e *Engine) keyOf(id uint64) (identity.PublicKey, bool) {
	k, ok := e.roster().keys[id]
	return k, ok
}
