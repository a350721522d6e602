package bftengine

import (
	"slices"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// roster is the SmartBFT node set in force from decision sequence from on:
// the members of one group definition with their node IDs. IDs are assigned
// by admission, so they never change for a member: the founders in the
// sorted order of the definition the group started from (IDs 1..n), then
// each member a passed motion adds the next free ID (several added at once:
// in sorted order). An ID is never reused; a member added again after its
// removal gets a new one. Every member derives the same rosters from the
// same history. A roster is never modified once built.
type roster struct {
	from   uint64                        // first decision sequence it is in force for
	group  fsm.Group                     // the definition it was derived from
	ids    map[identity.PublicKey]uint64 // current members → ID
	keys   map[uint64]identity.PublicKey // every ID ever assigned → its key (old decisions carry removed members' signatures)
	nodes  []uint64                      // current members' IDs, ascending
	next   uint64                        // next free ID
	quorum int
}

// genesisRoster is the founders' roster: IDs 1..n in sorted key order.
func genesisRoster(g fsm.Group) *roster {
	r := &roster{from: 1, group: g, ids: map[identity.PublicKey]uint64{}, keys: map[uint64]identity.PublicKey{}, quorum: g.Quorum()}
	for i, k := range g.Members {
		id := uint64(i + 1)
		r.ids[k], r.keys[id] = id, k
		r.nodes = append(r.nodes, id)
	}
	r.next = uint64(len(g.Members)) + 1
	return r
}

// then is the roster of g, in force from decision sequence from, following r.
func (r *roster) then(g fsm.Group, from uint64) *roster {
	n := &roster{from: from, group: g, ids: map[identity.PublicKey]uint64{}, keys: make(map[uint64]identity.PublicKey, len(r.keys)+1),
		next: r.next, quorum: g.Quorum()}
	for id, k := range r.keys {
		n.keys[id] = k
	}
	for _, k := range g.Members { // sorted: new members get IDs in key order
		id, ok := r.ids[k]
		if !ok {
			id = n.next
			n.next++
			n.keys[id] = k
		}
		n.ids[k] = id
		n.nodes = append(n.nodes, id)
	}
	slices.Sort(n.nodes)
	return n
}

// sameNodes reports whether r and o have one node set.
func (r *roster) sameNodes(o *roster) bool { return slices.Equal(r.nodes, o.nodes) }

func (r *roster) has(id uint64) bool {
	_, ok := slices.BinarySearch(r.nodes, id)
	return ok
}

// leaderOf is SmartBFT's leader of a view without rotation: the node IDs in
// ascending order, one view each.
func (r *roster) leaderOf(view uint64) uint64 { return r.nodes[view%uint64(len(r.nodes))] }

// rosters is the history of node sets, oldest first; replaced, never
// modified, when a membership change takes effect.
type rosters []*roster

func (rs rosters) last() *roster { return rs[len(rs)-1] }

// at is the roster in force at decision sequence seq.
func (rs rosters) at(seq uint64) *roster {
	for i := len(rs) - 1; i > 0; i-- {
		if seq >= rs[i].from {
			return rs[i]
		}
	}
	return rs[0]
}
