package node

import (
	"context"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
)

// A peer whose checkpoints cannot be judged shows its streak in the metrics
// state (treaty_peer_audit_unwitnessed) under its nickname, not only in a log
// line and trust evidence.
func TestUnwitnessedStreakInMetrics(t *testing.T) {
	caller, callee := pairNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keptOf(t, ctx, caller, callee, 1)
	if _, err := callee.audit.Append(ctx, audit.Entry{Kind: audit.KindPolicyChanged, Outcome: "changed", Stage: "policy"}); err != nil {
		t.Fatal(err)
	}
	newer, err := callee.audit.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	callee.Close() // unreachable from now on
	streak := func() (int, bool) {
		for _, p := range caller.MetricsState(ctx).Peers {
			if p.Name == "callee" {
				return p.Unwitnessed, true
			}
		}
		return 0, false
	}
	for i := 1; i <= 3; i++ {
		caller.judge(ctx, witnessed{callee.ID(), newer.Note})
		// The witness loop may judge one more note of its own meanwhile.
		if got, ok := streak(); !ok || got < i || got > i+1 {
			t.Fatalf("after %d unjudged notes: metrics streak %d (peer found %v)", i, got, ok)
		}
	}
	if got := caller.Unwitnessed(callee.ID()); got < 3 {
		t.Fatalf("Unwitnessed = %d", got)
	}
}
