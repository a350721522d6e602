package bftengine

import (
	"math"
	"time"

	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
)

// catchUp closes a gap SmartBFT leaves: a follower learns that it lags only
// from a later proposal, from commit votes for a later sequence, or from a
// heartbeat two sequences ahead. Votes that arrive while it synchronizes are
// dropped, and an idle leader's heartbeat carries the sequence the lagging
// member's view starts at, so a member that missed the last decision of an
// idle group stayed behind until the next proposal (one that missed its own
// removal never learned of it). A leader left behind (the others changed
// view without it, or removed it) hears nothing that makes it synchronize.
// So while no decision arrives, a member asks the members' heights every
// LeaderHeartbeatTimeout; when more than f of them claim a decision it lacks
// (at least one of them honest), it makes SmartBFT synchronize.
func (e *Engine) catchUp() {
	defer e.catching.Done()
	t := time.NewTicker(e.conf.LeaderHeartbeatTimeout)
	defer t.Stop()
	last := uint64(math.MaxUint64)
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		e.dmu.Lock()
		seq := e.lastSeq
		e.dmu.Unlock()
		if seq != last {
			last = seq // decisions arrive: SmartBFT's own signals work
			continue
		}
		leader, self := e.leaderID(), e.self.Load()
		if leader == 0 || self == 0 {
			continue
		}
		ahead := e.heightsAbove(seq)
		if len(ahead) <= e.roster().group.F() {
			continue
		}
		e.log.Info("bftengine: members are ahead of this one; synchronizing", "event", "consensus.bft.behind", "seq", seq)
		c := e.cons()
		if c == nil {
			continue
		}
		// SmartBFT has no call to start a sync; messages handed in locally
		// (never sent) make its heartbeat monitor start one: for a follower
		// a heartbeat from its leader naming a later view, for a leader left
		// behind (the others moved to a later view, or removed it) f+1
		// answers to its heartbeats naming a later view.
		if leader != self {
			c.HandleMessage(leader, &protos.Message{Content: &protos.Message_HeartBeat{
				HeartBeat: &protos.HeartBeat{View: math.MaxUint64},
			}})
			continue
		}
		for _, id := range ahead {
			c.HandleMessage(id, &protos.Message{Content: &protos.Message_HeartBeatResponse{
				HeartBeatResponse: &protos.HeartBeatResponse{View: math.MaxUint64},
			}})
		}
	}
}

// heightsAbove asks every member its last decided sequence and returns
// those that claim more than seq. It returns none while a sync runs (the
// sync is already catching up).
func (e *Engine) heightsAbove(seq uint64) []uint64 {
	if !e.syncMu.TryLock() {
		return nil
	}
	defer e.syncMu.Unlock()
	in := make(chan syncMsg, 256)
	e.syncIn.Store(&in)
	defer e.syncIn.Store(nil)
	heights := e.askHeights(in, syncHeightWait)
	if e.isClosed() {
		return nil
	}
	var ahead []uint64
	for id, h := range heights {
		if h > seq {
			ahead = append(ahead, id)
		}
	}
	return ahead
}
