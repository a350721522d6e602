package bftengine

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// A sync round keeps the deadline it is given: a member that claims
// decisions it never serves must not hold it past the deadline (sync's
// rounds may start a new one just before syncBudget ends, and a fetch waits
// syncFetchWait for each member that claims the next decision).
func TestSyncRoundKeepsItsDeadline(t *testing.T) {
	h := newHarness(t, 4)
	const liar, syncer = 1, 3 // neither leads view 0
	h.opts[liar].tamperSend = func(_ uint64, b []byte) [][]byte {
		f, err := decodeFrame(b[4:])
		if err != nil {
			return [][]byte{b}
		}
		switch f.kind {
		case kindHeight:
			f.seq += 1000 // claims decisions...
			return [][]byte{encodeFrame(f)}
		case kindDecision:
			return nil // ...it never serves
		}
		return [][]byte{b}
	}
	h.startAll()
	h.propose(0, h.req(0, fsm.Put("warm", nil)), 10*time.Second)

	e := h.engines[syncer]
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	in := make(chan syncMsg, 256)
	e.syncIn.Store(&in)
	defer e.syncIn.Store(nil)
	const budget = 200 * time.Millisecond
	start := time.Now()
	e.syncRound(in, start.Add(budget))
	if took := time.Since(start); took > budget+300*time.Millisecond {
		t.Fatalf("a sync round given %v took %v: the liar's claim held it past its deadline", budget, took.Round(time.Millisecond))
	}
}
