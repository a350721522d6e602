package raftengine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// TestBadSignatureRefusedByLeader: members apply without verifying
// signatures (fsm.SignaturesVerifiedByLeader), so the leader must refuse a
// request whose signature is not its proposer's, whether proposed at the
// leader or forwarded by a follower: the caller gets a typed bad-signature
// refusal and no member ever applies it.
func TestBadSignatureRefusedByLeader(t *testing.T) {
	tc := newCluster(t, 3)
	lead := tc.leader(20 * time.Second)
	g := tc.engine(lead).Status().Group
	const forgedSeq = 1000
	for i := range 3 {
		// Member i's request with one bit of its signature flipped, and
		// another member's valid signature over member i's body.
		q, err := fsm.SignRequest(tc.c.Keys[i], g.ID(), forgedSeq, fsm.Put(fmt.Sprintf("forged%d", i), []byte("x")))
		if err != nil {
			t.Fatal(err)
		}
		flipped := q.Encode()
		flipped[len(flipped)-1] ^= 1
		other := append(append([]byte{}, q.Body()...), tc.c.Keys[(i+1)%3].Sign(q.Body())...)
		for _, req := range [][]byte{flipped, other} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			a, err := tc.engine(i).Propose(ctx, req)
			cancel()
			var rej *consensus.RejectedError
			if !errors.As(err, &rej) || rej.Code != fsm.CodeBadSignature || rej.Index != 0 {
				t.Fatalf("member %d (leader %d): forged request gave %+v, %v; want a bad-signature refusal at index 0", i, lead, a, err)
			}
		}
	}
	// Valid requests after them commit; then no member holds a forged key
	// or a forged sequence number.
	var last consensus.Applied
	for i := range 3 {
		last = tc.propose(i, fsm.Put(fmt.Sprintf("ok%d", i), []byte("v")))
	}
	tc.converge(last.Index, 20*time.Second)
	for j := range 3 {
		e := tc.engine(j)
		e.mu.RLock()
		for i := range 3 {
			if _, ok := e.m.Get(fmt.Sprintf("forged%d", i)); ok {
				t.Errorf("member %d applied member %d's forged request", j, i)
			}
			if s := e.m.LastSeq(tc.c.Keys[i].Public()); s >= forgedSeq {
				t.Errorf("member %d: member %d's last seq is %d, the forged one's", j, i, s)
			}
		}
		e.mu.RUnlock()
	}
}

// TestLogEntriesCarryLeaderCheck: what this engine's leader appends is
// marked verified; an entry of the earlier format (version 1) is not, so a
// member replaying an old log verifies it at apply.
func TestLogEntriesCarryLeaderCheck(t *testing.T) {
	if e := decodeEntry(encodeEntry(fsm.Entry{Time: 1, Request: []byte("r"), LeaderVerified: true})); !e.LeaderVerified {
		t.Fatal("verified entry decoded unverified")
	}
	old := append([]byte{entryVersion, 0, 0, 0, 0, 0, 0, 0, 1}, "r"...)
	if e := decodeEntry(old); e.LeaderVerified || e.Time != 1 || string(e.Request) != "r" {
		t.Fatalf("version-1 entry decoded as %+v", e)
	}
}
