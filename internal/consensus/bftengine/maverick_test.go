package bftengine

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// A maverick is a member that runs the real engine but lies on the wire, in
// the manner of CometBFT's maverick node: every frame it sends passes through
// a misbehaviour. It is member 0 (node ID 1), the leader of view 0, so that
// the honest members must replace it to make progress when it obstructs.
type maverick struct {
	h   *harness
	key identity.PrivateKey
	gid fsm.ID

	mu     sync.Mutex
	heard  [][]byte // frames other members sent it (for replay)
	replay int
}

func newMaverick(h *harness, i int) *maverick {
	return &maverick{h: h, key: h.c.Keys[i], gid: h.c.Group.ID()}
}

// consensusMsg decodes a frame (with its length prefix) if it carries a
// SmartBFT message.
func consensusMsg(b []byte) *protos.Message {
	f, err := decodeFrame(b[4:])
	if err != nil || f.kind != kindConsensus {
		return nil
	}
	m := &protos.Message{}
	if proto.Unmarshal(f.body, m) != nil {
		return nil
	}
	return m
}

func consensusFrame(m *protos.Message) []byte {
	body, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return encodeFrame(frame{kind: kindConsensus, body: body})
}

// resign makes the header a valid leader signature again after the maverick
// changed its proposal: the lie is signed, hence provable.
func (mv *maverick) resign(p *protos.Proposal) {
	ph, mh := sha256.Sum256(p.Payload), sha256.Sum256(p.Metadata)
	var stmt []byte
	stmt = append(stmt, proposalMagic...)
	stmt = append(stmt, mv.gid[:]...)
	stmt = append(stmt, ph[:]...)
	stmt = append(stmt, mh[:]...)
	p.Header = mv.key.Sign(stmt)
}

// silence: sends nothing at all.
func (mv *maverick) silence(uint64, []byte) [][]byte { return nil }

// equivocate: as leader, sends each follower a different (validly signed)
// proposal for the same view and sequence.
func (mv *maverick) equivocate(to uint64, b []byte) [][]byte {
	m := consensusMsg(b)
	if m == nil || m.GetPrePrepare() == nil {
		return [][]byte{b}
	}
	p := m.GetPrePrepare().GetProposal()
	bt, err := decodeBatch(p.Payload)
	if err != nil {
		return [][]byte{b}
	}
	bt.time -= int64(to) // a different batch for every follower
	p.Payload = bt.encode()
	mv.resign(p)
	return [][]byte{consensusFrame(m)}
}

// equivocateSplit: as leader, sends member 4 a different proposal than
// members 2 and 3, so that a quorum (2, 3 and itself) could form on one of
// them while member 4 holds the other.
func (mv *maverick) equivocateSplit(to uint64, b []byte) [][]byte {
	if to != 4 {
		return [][]byte{b}
	}
	return mv.equivocate(to, b)
}

// futureTime: as leader, stamps its proposals an hour ahead (which would
// expire motions early), signed.
func (mv *maverick) futureTime(to uint64, b []byte) [][]byte {
	m := consensusMsg(b)
	if m == nil || m.GetPrePrepare() == nil {
		return [][]byte{b}
	}
	p := m.GetPrePrepare().GetProposal()
	bt, err := decodeBatch(p.Payload)
	if err != nil {
		return [][]byte{b}
	}
	bt.time += int64(time.Hour)
	p.Payload = bt.encode()
	mv.resign(p)
	return [][]byte{consensusFrame(m)}
}

// forge: as leader, slips into every proposal a vote that claims to be
// member 2's (signed by the maverick); in every commit, claims another
// member's signer ID.
func (mv *maverick) forge(to uint64, b []byte) [][]byte {
	m := consensusMsg(b)
	switch {
	case m == nil:
		return [][]byte{b}
	case m.GetPrePrepare() != nil:
		p := m.GetPrePrepare().GetProposal()
		bt, err := decodeBatch(p.Payload)
		if err != nil {
			return [][]byte{b}
		}
		q, err := fsm.SignRequest(mv.key, mv.gid, 1<<40, fsm.Vote("approve", true))
		if err != nil {
			panic(err)
		}
		forged := q.Encode()
		copy(forged[len(requestMagic)+32:], mv.h.c.Keys[1].Public().Bytes())
		bt.items = append(bt.items, forged)
		p.Payload = bt.encode()
		mv.resign(p)
		return [][]byte{consensusFrame(m)}
	case m.GetCommit() != nil:
		s := m.GetCommit().GetSignature()
		s.Signer = s.Signer%4 + 1 // the next member's ID
		return [][]byte{consensusFrame(m)}
	}
	return [][]byte{b}
}

// badSigs: corrupts every signature it sends: proposal headers, commit
// votes, attestations, and the leader's signatures in the witnesses it
// passes on.
func (mv *maverick) badSigs(to uint64, b []byte) [][]byte {
	if f, err := decodeFrame(b[4:]); err == nil && (f.kind == kindAttest || f.kind == kindWitness) {
		for i := range f.attests {
			f.attests[i].sig[0] ^= 0x80
		}
		if f.kind == kindWitness {
			f.wit.sig = append([]byte{}, f.wit.sig...)
			f.wit.sig[0] ^= 0x80
		}
		return [][]byte{encodeFrame(f)}
	}
	m := consensusMsg(b)
	switch {
	case m == nil:
		return [][]byte{b}
	case m.GetPrePrepare() != nil:
		m.GetPrePrepare().GetProposal().Header[0] ^= 0x80
	case m.GetCommit() != nil:
		m.GetCommit().GetSignature().Value[0] ^= 0x80
	default:
		return [][]byte{b}
	}
	return [][]byte{consensusFrame(m)}
}

// hear records the consensus frames other members send the maverick.
func (mv *maverick) hear(_ uint64, b []byte) bool {
	f, err := decodeFrame(b)
	if err != nil || f.kind != kindConsensus {
		return false
	}
	mv.mu.Lock()
	defer mv.mu.Unlock()
	if len(mv.heard) < 4096 {
		mv.heard = append(mv.heard, encodeFrame(f))
	}
	return false
}

// replayOld: behaves, but with every frame also sends an old message it
// heard from another member, as if it were its own.
func (mv *maverick) replayOld(to uint64, b []byte) [][]byte {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	out := [][]byte{b}
	if len(mv.heard) > 8 {
		out = append(out, mv.heard[mv.replay%(len(mv.heard)-8)])
		mv.replay++
	}
	return out
}

// maxExtraProposals bounds the proposals TestMaverick adds while it waits
// for evidence that needs the maverick to vote.
const maxExtraProposals = 10

func TestMaverick(t *testing.T) {
	for _, tc := range []struct {
		name       string
		set        func(mv *maverick, o *options)
		kinds      []string // evidence some honest member must report against the maverick
		viewChange bool     // the maverick must lose the lead for the group to progress
	}{
		{"silence", func(mv *maverick, o *options) { o.tamperSend = mv.silence }, nil, true},
		{"equivocating-leader", func(mv *maverick, o *options) { o.tamperSend = mv.equivocate }, []string{"equivocation"}, true},
		{"equivocating-leader-split", func(mv *maverick, o *options) { o.tamperSend = mv.equivocateSplit }, []string{"equivocation"}, true},
		{"future-time", func(mv *maverick, o *options) { o.tamperSend = mv.futureTime }, []string{"time-skew"}, true},
		{"forged-votes", func(mv *maverick, o *options) { o.tamperSend = mv.forge }, []string{"forged-request", "forged-vote"}, true},
		{"bad-signatures", func(mv *maverick, o *options) { o.tamperSend = mv.badSigs }, []string{"bad-proposal-signature", "bad-signature"}, true},
		{"replayed-messages", func(mv *maverick, o *options) { o.tamperSend, o.observeRecv = mv.replayOld, mv.hear }, []string{"replay"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 4)
			mv := newMaverick(h, 0)
			tc.set(mv, &h.opts[0])
			h.startAll()
			honest := []int{1, 2, 3}
			mkey := h.c.Keys[0].Public()

			// The honest members make progress while the maverick keeps at it.
			var last uint64
			for j := range 6 {
				via := honest[j%3]
				a := h.propose(via, h.req(via, fsm.Put(fmt.Sprintf("k%d", j), []byte("v"))), 60*time.Second)
				if !a.Result.OK() {
					t.Fatalf("entry %d: %v", a.Index, a.Result.Err())
				}
				last = a.Index
			}
			// The maverick lies only in what it sends, and it sends votes only
			// for proposals it is current for: a maverick that lags (the
			// honest three are a quorum without it) syncs past every proposal
			// above and never votes. So until the evidence is in, let it catch
			// up, then give it one more proposal to vote on.
			reported := func(kind string) bool {
				for _, i := range honest {
					if h.ev[i].has(mkey, kind) {
						return true
					}
				}
				return false
			}
			for _, kind := range tc.kinds {
				for j := 0; !reported(kind); j++ {
					if j == maxExtraProposals {
						t.Fatalf("no evidence %s against the maverick after %d more proposals", kind, j)
					}
					waitFor(t, 30*time.Second, "evidence "+kind+" or the maverick at index "+fmt.Sprint(last), func() bool {
						return reported(kind) || h.engines[0].lastIdx.Load() >= last
					})
					if reported(kind) {
						break
					}
					via := honest[j%3]
					a := h.propose(via, h.req(via, fsm.Put(fmt.Sprintf("more%d", j), []byte("v"))), 60*time.Second)
					if !a.Result.OK() {
						t.Fatalf("entry %d: %v", a.Index, a.Result.Err())
					}
					last = a.Index
				}
			}
			h.waitIndex(honest, last, 20*time.Second)
			d := h.digest(honest[0])
			for _, i := range honest {
				if h.digest(i) != d {
					t.Fatalf("honest member %d's state differs", i+1)
				}
			}
			h.applied.check(t, honest)
			if tc.viewChange {
				if l := h.engines[1].Status().Leader; l.Equal(mkey) {
					t.Fatal("the maverick still leads")
				}
			}
			for _, i := range honest {
				t.Logf("member %d reported %v; leader now %s", i+1, h.ev[i].against(mkey), h.engines[i].Status().Leader.Short())
			}
			// No honest member is blamed.
			for _, i := range honest {
				for _, j := range honest {
					if got := h.ev[i].against(h.c.Keys[j].Public()); len(got) > 0 {
						t.Fatalf("member %d reported honest member %d: %v", i+1, j+1, got)
					}
				}
			}
			// A record of the last entry verifies, whatever the maverick signed.
			ctx, cancel := contextWithin(20 * time.Second)
			defer cancel()
			r, err := h.engines[honest[1]].Record(ctx, last)
			if err != nil {
				t.Fatal(err)
			}
			if err := fsm.Verify(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}
