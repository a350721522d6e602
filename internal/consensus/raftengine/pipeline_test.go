package raftengine

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The engine replicates without raft's pipeline: with it, a leader's
// replication to a follower that answered a conflict could wedge, and Close
// then waited forever (TestProposeFuncKeepsOrder hung 1 run in ~12).
func TestReplicationIsNotPipelined(t *testing.T) {
	tc := newCluster(t, 3)
	tc.leader(20 * time.Second)
	e := tc.engine(0)
	_, err := e.trans.AppendEntriesPipeline(raft.ServerID("peer"), raft.ServerAddress("peer"))
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: %v, want ErrPipelineReplicationNotSupported", err)
	}
}
