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

// TestSnapshotInstall: a follower that was down while the leader compacted
// its log catches up from a snapshot sent over the group's Network; the
// leader restarts from its own snapshot; records of indexes a member applied
// survive compaction there, and a member that only got the snapshot has no
// record for them (ErrNoRecord), never a wrong one.
func TestSnapshotInstall(t *testing.T) {
	tm := testTiming()
	tm.trailingLogs = 2
	tc := newClusterOf(t, 3, 3, tm)
	lead := tc.leader(20 * time.Second)
	lag := (lead + 1) % 3
	tc.stop(lag)
	var first, last consensus.Applied
	for i := range 20 {
		a := tc.propose(lead, fsm.Put(fmt.Sprintf("k%d", i%5), []byte(fmt.Sprint(i))))
		if i == 0 {
			first = a
		}
		last = a
	}
	if err := tc.engine(lead).raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	tc.start(lag)
	tc.converge(last.Index, 30*time.Second)
	ctx := context.Background()
	if _, err := tc.engine(lag).Record(ctx, first.Index); !errors.Is(err, consensus.ErrNoRecord) {
		t.Fatalf("record on the member restored from a snapshot: %v, want ErrNoRecord", err)
	}
	r, err := tc.engine(lead).Record(ctx, first.Index)
	if err != nil || fsm.Verify(r) != nil {
		t.Fatalf("leader's record of a compacted entry: %v", err)
	}

	tc.stop(lead)
	tc.start(lead)
	tc.leader(20 * time.Second)
	a := tc.propose(lead, fsm.Put("after", []byte("restart")))
	tc.converge(a.Index, 30*time.Second)
	if it, ok := tc.get(lag, "k4"); !ok || string(it.Value) != "19" {
		t.Fatalf("k4 = %q %v after snapshot install", it.Value, ok)
	}
}
