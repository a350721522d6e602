package bftengine

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// A member that hears none of SmartBFT's messages still catches up while
// the group is idle: catchUp sees the others ahead and makes SmartBFT
// synchronize over the engine's own frames. SmartBFT alone would sync only
// when the view change this member starts times out, which here is never.
func TestIdleLaggingMemberCatchesUp(t *testing.T) {
	h := newHarness(t, 4)
	const deaf = 3
	h.opts[deaf].observeRecv = func(_ uint64, b []byte) bool {
		f, err := decodeFrame(b)
		return err == nil && f.kind == kindConsensus
	}
	h.opts[deaf].config.ViewChangeTimeout = time.Hour
	h.startAll()
	a := h.propose(0, h.req(0, fsm.Put("a", nil)), 10*time.Second)
	a = h.propose(1, h.req(1, fsm.Put("b", nil)), 10*time.Second)
	h.waitIndex([]int{deaf}, a.Index, 20*time.Second)
}
