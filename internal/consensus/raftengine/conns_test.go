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

// TestProposeFuncKeepsOrder: requests numbered inside ProposeFunc reach the
// log in sequence order, from the leader and through forwarding, so none of
// many concurrent proposals from one member is refused as a replay (unless
// an election interrupted the run, which switches paths).
func TestProposeFuncKeepsOrder(t *testing.T) {
	tc := newCluster(t, 3)
	lead := tc.leader(20 * time.Second)
	for _, i := range []int{lead, (lead + 1) % 3} {
		var wg sync.WaitGroup
		var mu sync.Mutex
		replays, failures := 0, 0
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range 8 {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					a, err := tc.engine(i).ProposeFunc(ctx, tc.sign(i, fsm.Put(fmt.Sprintf("o%d", w), []byte(fmt.Sprint(n)))))
					cancel()
					mu.Lock()
					switch {
					case err != nil:
						failures++
					case a.Result.Code == fsm.CodeReplay:
						replays++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if failures == 0 && replays != 0 {
			t.Fatalf("member %d (leader: %v): %d of 256 concurrent proposals refused as replays", i, i == lead, replays)
		}
		t.Logf("member %d: %d replays, %d failures", i, replays, failures)
	}
}
