package raftengine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// A member that applied an entry has its record: Record does not answer
// ErrNoRecord in the moment between the state machine taking a batch and
// the batch's records being stored (TestRecordVerifies failed on that 1
// run in ~20 under load).
func TestRecordOfAppliedIndex(t *testing.T) {
	tc := newCluster(t, 3)
	lead := tc.leader(20 * time.Second)
	f := tc.engine((lead + 1) % 3)
	for i := range 30 {
		a := tc.propose(lead, fsm.Put(fmt.Sprintf("k%d", i), []byte("v")))
		deadline := time.Now().Add(20 * time.Second)
		for {
			f.mu.RLock()
			at := f.m.LastIndex()
			f.mu.RUnlock()
			if at >= a.Index {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("follower did not apply index %d", a.Index)
			}
			<-time.After(100 * time.Microsecond) // polling as tightly as a reader could
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := f.Record(ctx, a.Index)
		cancel()
		if err != nil {
			t.Fatalf("record of index %d the follower applied: %v", a.Index, err)
		}
	}
}
