package raftengine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// TestConnectionBudget: under concurrent proposals from every member (so
// raft replicates with pipelining and followers forward), no member opens
// more connections to a peer than the transport accepts per peer and
// protocol: nothing is evicted, and connections are reused, not redialled.
func TestConnectionBudget(t *testing.T) {
	tc := newCluster(t, 3)
	tc.leader(20 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 480)
	for w := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := w % 3
			for n := range 10 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := tc.engine(i).ProposeFunc(ctx, tc.sign(i, fsm.Put(fmt.Sprintf("w%d", w), []byte(fmt.Sprint(n)))))
				cancel()
				if err != nil {
					errs <- err // an election under load; the budget is what matters here
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if n := len(errs); n > 48 {
		t.Fatalf("%d of 480 proposals failed, first: %v", n, <-errs)
	}
	for i, tr := range tc.c.Trs {
		s := tr.Stats()
		t.Logf("member %d: dialled %d, evicted %d", i, s.Dialed, s.Evicted)
		if s.Evicted != 0 {
			t.Errorf("member %d: %d connections evicted over the per-peer limit", i, s.Evicted)
		}
		// Per peer: at most 2 pooled + 1 pipeline + 1 forwarding, plus
		// redials after an election; far fewer than one per proposal.
		if s.Dialed > 16 {
			t.Errorf("member %d dialled %d connections for 480 proposals", i, s.Dialed)
		}
	}
}
