package testnet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// TestClusterRestart: a stopped member is unreachable; started again it binds
// a new port, its peers learn it, and its Go capabilities are back.
func TestClusterRestart(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 3, Options{})
	n0, n1 := c.Members[0], c.Members[1]
	n1.Handle(t, "ping", func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{"pong":true}`), nil })
	n1.Grant(t, "n0", "ping")
	n0.MustCall(t, "n1", "ping", "")
	old := n1.Addr()
	n1.Stop(t)
	// The call may race n0's pooled connection learning that n1 closed it:
	// then it is lost on that connection rather than refused at the dial.
	// Both are the transport stage's exit 4.
	if o := n0.Call(t, "n1", "ping", ""); o.Code != refusal.ExitUnreachable ||
		!strings.Contains(o.Err.Error(), "unreachable") && !strings.Contains(o.Err.Error(), "lost") {
		t.Fatalf("%v; want exit %d naming the peer unreachable or the connection lost", o, refusal.ExitUnreachable)
	}
	n1.Start(t)
	if n1.Addr() == old {
		t.Logf("the new port happens to be the old one (%s)", old)
	}
	n0.MustCall(t, "n1", "ping", "")
}

// TestClusterClock: the shared clock moves every node's time at once.
func TestClusterClock(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 2, Options{})
	before := c.Clock.Now()
	c.Clock.Advance(time.Hour)
	c.Clock.Advance(-time.Hour) // ignored: clocks do not run backwards
	if d := c.Clock.Now().Sub(before); d < time.Hour || d > time.Hour+time.Minute {
		t.Fatalf("clock moved %v, want an hour", d)
	}
	// Calls still verify: both ends agree on the shifted time.
	c.Members[1].Handle(t, "ping", func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{}`), nil })
	c.Members[1].Grant(t, "n0", "ping")
	c.Members[0].MustCall(t, "n1", "ping", "")
}

// TestClusterOf32 starts the cluster size the gossip work needs and sends a
// call around the full mesh's ring.
func TestClusterOf32(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := NewCluster(t, 32, Options{})
	t.Logf("32 nodes up and federated in %v", time.Since(start).Round(time.Millisecond))
	for i, m := range c.Members {
		next := c.Members[(i+1)%len(c.Members)]
		next.Handle(t, "ping", func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{}`), nil })
		next.Grant(t, m.Name, "ping")
	}
	for i, m := range c.Members {
		m.MustCall(t, c.Members[(i+1)%len(c.Members)].Name, "ping", "")
	}
}
