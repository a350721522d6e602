package raftengine

import (
	"bytes"
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
// survive compaction there, and the member that got the snapshot fetched
// them and delivered each skipped entry once, marked Adopted (ADR 0011).
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
	// Both members that stay compact their logs: whichever leads when the
	// lagging member returns (an election may move the lead) can only send
	// it a snapshot, so the entries up to last are adopted.
	tc.converge(last.Index, 30*time.Second)
	for _, i := range []int{lead, 3 - lead - lag} {
		if err := tc.engine(i).raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %d: %v", i, err)
		}
	}
	tc.start(lag)
	tc.converge(last.Index, 30*time.Second)
	ctx := context.Background()
	r, err := tc.engine(lead).Record(ctx, first.Index)
	if err != nil || fsm.Verify(r) != nil {
		t.Fatalf("leader's record of a compacted entry: %v", err)
	}
	// The member fetches the skipped records after installing the snapshot.
	got, err := tc.engine(lag).Record(ctx, first.Index)
	for deadline := time.Now().Add(20 * time.Second); errors.Is(err, consensus.ErrNoRecord) && time.Now().Before(deadline); {
		pollPause()
		got, err = tc.engine(lag).Record(ctx, first.Index)
	}
	if err != nil || fsm.Verify(got) != nil || !bytes.Equal(got.Request, r.Request) || got.Index != r.Index {
		t.Fatalf("record on the member restored from a snapshot: %+v %v", got, err)
	}
	// Every command the leader applied reached the lagging member's OnApply
	// once, the skipped ones adopted. Delivery runs behind the stored
	// records (and the state converge looks at): wait for it first.
	lapp, gapp := tc.apply[lead], tc.apply[lag]
	delivered := func() (missing uint64, seen map[uint64]int) {
		lapp.mu.Lock()
		gapp.mu.Lock()
		defer lapp.mu.Unlock()
		defer gapp.mu.Unlock()
		seen = map[uint64]int{}
		for _, i := range gapp.idx {
			seen[i]++
		}
		for _, i := range lapp.idx {
			if seen[i] == 0 {
				return i, seen
			}
		}
		return 0, seen
	}
	missing, seen := delivered()
	for deadline := time.Now().Add(20 * time.Second); missing != 0 && time.Now().Before(deadline); {
		pollPause()
		missing, seen = delivered()
	}
	lapp.mu.Lock()
	gapp.mu.Lock()
	for _, i := range lapp.idx {
		if seen[i] != 1 {
			t.Fatalf("index %d delivered %d times on the member that caught up", i, seen[i])
		}
	}
	if !gapp.adopted[first.Index] || !gapp.adopted[last.Index] {
		t.Fatalf("entries %d and %d were not adopted: %v", first.Index, last.Index, gapp.adopted)
	}
	gapp.mu.Unlock()
	lapp.mu.Unlock()

	tc.stop(lead)
	tc.start(lead)
	tc.leader(20 * time.Second)
	a := tc.propose(lead, fsm.Put("after", []byte("restart")))
	tc.converge(a.Index, 30*time.Second)
	if it, ok := tc.get(lag, "k4"); !ok || string(it.Value) != "19" {
		t.Fatalf("k4 = %q %v after snapshot install", it.Value, ok)
	}
}
