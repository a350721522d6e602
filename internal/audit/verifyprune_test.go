package audit

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestVerifyWhilePruning: Verify may run while the node writes, and the node
// prunes on its own (retention). A pruning that commits while Verify reads
// the rows is not tampering: no Verify may say ErrTampered, and once the
// pruning stops Verify passes.
func TestVerifyWhilePruning(t *testing.T) {
	k := testKey(t, 1)
	clk := newStepClock()
	l, path := openTest(t, k, func(c *Config) { c.Now = clk.Now })
	appendN(t, l, 0, 1500)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := 1; i <= 40; i++ { // rows, then content, of 25 more entries each time
			before := clk.base.Add(time.Duration(i*25) * time.Millisecond)
			if _, err := l.PruneRows(t.Context(), before); err != nil {
				t.Error(err)
				return
			}
			if _, err := l.Prune(t.Context(), before.Add(25*time.Millisecond)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer wg.Wait()
	for runs := 0; ; runs++ {
		select {
		case <-done:
			wg.Wait()
			if _, err := Verify(t.Context(), path, k.Public()); err != nil {
				t.Fatalf("after pruning: %v", err)
			}
			t.Logf("%d verifies while pruning", runs)
			return
		default:
		}
		if _, err := Verify(t.Context(), path, k.Public()); errors.Is(err, ErrTampered) {
			t.Fatalf("Verify while pruning (run %d): %v", runs, err)
		}
	}
}
