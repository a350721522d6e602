package bftengine

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hyperledger-labs/SmartBFT/pkg/types"
	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// ErrStoreCorrupt is New's refusal of a store whose checkpoint or decisions
// do not verify: altered, removed or reordered since this member wrote them
// (ADR 0026). The engine does not start; restore the group's directory from
// a backup, or remove it so that the member fetches the history again.
var ErrStoreCorrupt = errors.New("bftengine: stored state does not verify")

// A checkpoint is what a restart loads instead of replaying the decisions
// it covers (ADR 0026): the machine's snapshot after decision seq, the node
// sets in force since the group's start, and the hash of decision seq as
// stored. This member signs it with its identity key, so a store altered
// without that key fails at start; decisions after it are verified in full.
type checkpoint struct {
	seq     uint64
	decHash [32]byte // SHA-256 of decision seq's stored body
	epochs  []epochAt
	state   []byte // fsm.Machine.Snapshot after decision seq
}

// epochAt is a node-set change: group is in force from decision from on.
type epochAt struct {
	from  uint64
	group fsm.Group
}

// checkpointMagic separates what a member signs over its own checkpoint.
const checkpointMagic = "treaty/bft/checkpoint/v1\x00"

// Checkpoint spacing and bounds. A checkpoint is taken when this many
// decisions or entries were applied since the last one, or, for a large
// state, one entry per KiB of snapshot, so writing snapshots costs at most
// about a KiB per entry.
const (
	checkpointDecisions = 1024
	checkpointEntries   = 4096
	maxCheckpointState  = 256 << 20 // fsm.MaxStoreBytes and what motions and sequence numbers add
	maxEpochs           = 1 << 20
)

func (c checkpoint) encode(domain fsm.ID) []byte {
	var w wbuf
	w.raw([]byte(checkpointMagic))
	w.raw(domain[:])
	w.u64(c.seq)
	w.raw(c.decHash[:])
	w.u32(uint32(len(c.epochs)))
	for _, x := range c.epochs {
		w.u64(x.from)
		w.bytes(x.group.Canonical())
	}
	w.bytes(c.state)
	return w.b
}

func decodeCheckpoint(b []byte, domain fsm.ID) (checkpoint, error) {
	r := rbuf{b: b}
	if string(r.take(len(checkpointMagic))) != checkpointMagic {
		return checkpoint{}, errors.New("bad magic")
	}
	if d := r.take(len(domain)); r.err == nil && string(d) != string(domain[:]) {
		return checkpoint{}, errors.New("written for another group")
	}
	var c checkpoint
	c.seq = r.u64()
	copy(c.decHash[:], r.take(32))
	n := r.count("epochs", maxEpochs)
	for range n {
		from := r.u64()
		gb := r.bytes("group", 1<<20)
		if r.err != nil {
			break
		}
		g, err := fsm.ParseGroup(gb)
		if err != nil {
			return checkpoint{}, fmt.Errorf("epoch from %d: %w", from, err)
		}
		if len(c.epochs) > 0 && from <= c.epochs[len(c.epochs)-1].from || from < 2 {
			return checkpoint{}, fmt.Errorf("epoch from %d out of order", from)
		}
		c.epochs = append(c.epochs, epochAt{from: from, group: g})
	}
	c.state = r.bytes("state", maxCheckpointState)
	if err := r.done(); err != nil {
		return checkpoint{}, err
	}
	return c, nil
}

// checkpointStatement is what this member signs over a checkpoint's body.
func (e *Engine) checkpointStatement(body []byte) []byte {
	h := sha256.Sum256(body)
	return e.signed(checkpointMagic, h[:])
}

// corrupt is ErrStoreCorrupt naming the group and what failed.
func (e *Engine) corrupt(format string, args ...any) error {
	return fmt.Errorf("bftengine: group %s: %s: %w", e.cfg.Group.Name, fmt.Sprintf(format, args...), ErrStoreCorrupt)
}

// maybeCheckpoint writes a checkpoint after decision seq (applied; its
// entries stored; decHash the SHA-256 of its stored body) if enough was
// applied since the last one. e.mu is held, or the engine is not running
// yet. A checkpoint that fails to be written is logged: the next restart
// replays more.
func (e *Engine) maybeCheckpoint(seq uint64, decHash [32]byte) {
	every := e.opts.checkpointEvery
	if every.decisions == 0 {
		return
	}
	idx := e.m.LastIndex()
	if seq-e.cp.seq < every.decisions && idx-e.cp.index < max(every.entries, e.cp.size/1024) {
		return
	}
	c := checkpoint{seq: seq, decHash: decHash, state: e.m.Snapshot()}
	for _, r := range e.rosters()[1:] {
		c.epochs = append(c.epochs, epochAt{from: r.from, group: r.group})
	}
	body := c.encode(e.domain)
	sig := e.cfg.Self.Sign(e.checkpointStatement(body))
	if err := e.st.putCheckpoint(seq, body, e.cfg.Self.Public(), sig); err != nil {
		e.log.Warn("bftengine: checkpoint not stored", "event", "consensus.bft.checkpoint", "seq", seq, "err", err)
		return
	}
	e.cp = cpMark{seq: seq, index: idx, size: uint64(len(c.state))}
}

// cpMark is where the last checkpoint stands.
type cpMark struct{ seq, index, size uint64 }

// loadCheckpoint restores the machine, the rosters and the last decision
// from the stored checkpoint, after checking this member's signature over
// it and the hash of the decision it ends with; it returns the sequence it
// covers (0: none, the whole history is replayed). A checkpoint signed by
// another key (this node's identity changed) is not used.
func (e *Engine) loadCheckpoint() (uint64, error) {
	body, signer, sig, ok, err := e.st.checkpoint()
	if err != nil || !ok {
		return 0, err
	}
	self := e.cfg.Self.Public()
	if k, err := identity.PublicKeyFromEd25519(signer); err != nil || k != self {
		e.log.Warn("bftengine: checkpoint signed by another key; replaying the whole history", "event", "consensus.bft.checkpoint")
		return 0, nil
	}
	if !self.Verify(e.checkpointStatement(body), sig) {
		return 0, e.corrupt("checkpoint is not this member's: its signature does not verify")
	}
	c, err := decodeCheckpoint(body, e.domain)
	if err != nil {
		return 0, e.corrupt("checkpoint: %v", err)
	}
	m, err := fsm.Restore(c.state)
	if err != nil {
		return 0, e.corrupt("checkpoint: %v", err)
	}
	rs := rosters{genesisRoster(e.genesis)}
	for _, x := range c.epochs {
		rs = append(rs, rs.last().then(x.group, x.from))
	}
	if fsm.Compare(rs.last().group, m.Group()) != nil {
		return 0, e.corrupt("checkpoint: its node sets end with another group than its state")
	}
	dbody, found, err := e.st.decisionBody(c.seq)
	switch {
	case err != nil:
		return 0, err
	case !found:
		return 0, e.corrupt("decision %d, the last the checkpoint covers, is missing", c.seq)
	case sha256.Sum256(dbody) != c.decHash:
		return 0, e.corrupt("decision %d, the last the checkpoint covers, was altered", c.seq)
	}
	d, err := decodeDecision(dbody)
	if err != nil {
		return 0, e.corrupt("decision %d: %v", c.seq, err)
	}
	p := d.proposal()
	md := &protos.ViewMetadata{}
	if err := proto.Unmarshal(p.Metadata, md); err != nil {
		return 0, e.corrupt("decision %d: %v", c.seq, err)
	}
	e.m = m
	e.ros.Store(&rs)
	for _, mo := range m.Motions() {
		if mo.Kind != fsm.MotionPlain && mo.Outcome == fsm.OutcomeOpen {
			e.memberMo[mo.Name] = true
		}
	}
	e.lastSeq = c.seq
	e.last = types.Decision{Proposal: p, Signatures: d.signatures()}
	e.lastView.Store(md.ViewId)
	e.cp = cpMark{seq: c.seq, index: m.LastIndex(), size: uint64(len(c.state))}
	return c.seq, nil
}
