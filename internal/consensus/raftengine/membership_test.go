package raftengine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// TestMembershipChange: adding a member is a motion of the group; once it
// passes, the leader makes the new member a voter, the joiner (started from
// the genesis definition, not bootstrapped) catches up and can propose under
// the new epoch; removing a member takes it out of raft's configuration.
func TestMembershipChange(t *testing.T) {
	tc := newClusterOf(t, 4, 3, testTiming())
	tc.leader(20 * time.Second)
	joiner := tc.c.Keys[3].Public()

	open := tc.propose(0, fsm.AddMember(joiner, 0, "welcome"))
	tc.propose(1, fsm.Vote(open.Result.Motion, true))
	pass := tc.propose(2, fsm.Vote(open.Result.Motion, true))
	if len(pass.Result.Closed) != 1 || pass.Result.Closed[0].Outcome != fsm.OutcomePassed {
		t.Fatalf("add motion: %+v", pass.Result)
	}
	tc.start(3)
	tc.converge(pass.Index, 30*time.Second)
	if g := tc.engine(3).Status().Group; g.Epoch != 1 || !g.IsMember(joiner) {
		t.Fatalf("joiner sees group %s", g)
	}
	waitVoters(t, tc, 4)
	a := tc.propose(3, fsm.Put("from-joiner", []byte("hi")))
	tc.converge(a.Index, 20*time.Second)

	gone := tc.c.Keys[2].Public()
	open = tc.propose(0, fsm.RemoveMember(gone, 0, "bye"))
	// The removed member votes, but not last: the deciding vote's proposer
	// waits to apply it, and once the leader takes a removed member out of
	// raft's configuration it may never learn that entry committed (its
	// proposal then ends "outcome unknown", which is the truth).
	tc.propose(2, fsm.Vote(open.Result.Motion, true)) // quorum of 4 is 3
	tc.propose(1, fsm.Vote(open.Result.Motion, true))
	pass = tc.propose(3, fsm.Vote(open.Result.Motion, true))
	if len(pass.Result.Closed) != 1 || pass.Result.Closed[0].Outcome != fsm.OutcomePassed {
		t.Fatalf("remove motion: %+v", pass.Result)
	}
	waitVoters(t, tc, 3)
	// Only the members that stay are bound to converge: once the leader
	// takes the removed member out of raft's configuration it stops
	// replicating to it (one last best-effort append aside), so that member
	// may never learn that its removal, or anything after, committed.
	tc.convergeAmong(pass.Index, 20*time.Second, []int{0, 1, 3})
	leaderAmong(t, tc, 0, 1, 3) // a removed leader steps down after committing its removal
	a = tc.propose(1, fsm.Put("after-remove", []byte("ok")))
	if a.Result.Code != fsm.CodeOK {
		t.Fatalf("put after removal: %+v", a.Result)
	}
	// The removed member changes nothing: having applied its removal it
	// refuses to propose; if it never learned of it, the group refuses its
	// request or it finds no leader.
	removed := tc.engine(2)
	learned := !removed.isMember()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	x, err := removed.ProposeFunc(ctx, tc.sign(2, fsm.Put("x", nil)))
	switch {
	case learned && !errors.Is(err, consensus.ErrNotMember):
		t.Fatalf("propose from the removed member that applied its removal: %+v %v, want ErrNotMember", x.Result, err)
	case err == nil && x.Result.OK():
		t.Fatalf("the removed member's proposal was applied at index %d", x.Index)
	}
	if _, ok := tc.get(1, "x"); ok {
		t.Fatal("the removed member's key is in the group's state")
	}
}

// leaderAmong waits until one of the engines in members leads and every
// other one in members agrees.
func leaderAmong(t *testing.T, tc *tcluster, members ...int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var lead identity.PublicKey
		agreed := true
		for _, i := range members {
			e := tc.engine(i)
			if e == nil {
				agreed = false
				break
			}
			l := e.Status().Leader
			if l.IsZero() || (!lead.IsZero() && l != lead) {
				agreed = false
				break
			}
			lead = l
		}
		if agreed {
			for _, i := range members {
				if tc.c.Keys[i].Public() == lead {
					return
				}
			}
		}
		pollPause()
	}
	t.Fatalf("no leader among %v agreed by them", members)
}

// waitVoters waits until a leader's raft configuration has n voters. It
// asks whichever engine leads rather than one all engines agree on: a
// removed member hears from no leader again, so agreement never comes.
func waitVoters(t *testing.T, tc *tcluster, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i := range tc.eng {
			e := tc.engine(i)
			if e == nil || e.raft.State() != raft.Leader {
				continue
			}
			f := e.raft.GetConfiguration()
			if f.Error() == nil {
				voters := 0
				for _, s := range f.Configuration().Servers {
					if s.Suffrage == raft.Voter {
						voters++
					}
				}
				if voters == n {
					return
				}
			}
		}
		pollPause()
	}
	t.Fatalf("raft configuration did not reach %d voters", n)
}
