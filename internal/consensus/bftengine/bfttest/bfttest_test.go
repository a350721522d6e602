package bfttest

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
)

// The delay wrapper adds its delay to each direction: the round trip grows
// by twice the delay, and bytes still arrive in order (RTT reads them back).
func TestDelayAddsToTheRoundTrip(t *testing.T) {
	c := NewCluster(t, "ping-test", 2)
	plain := c.RTT(t, nil, 10)
	const d = 15 * time.Millisecond
	delayed := c.RTT(t, func(n consensus.Network) consensus.Network { return Delay(n, d) }, 10)
	if p := delayed[len(delayed)/2]; p < 2*d || p > 2*d+200*time.Millisecond {
		t.Fatalf("delayed RTT p50 %v, want about %v", p, 2*d)
	}
	if p := plain[len(plain)/2]; p >= 2*d {
		t.Fatalf("plain RTT p50 %v is not below the delayed one", p)
	}
}
