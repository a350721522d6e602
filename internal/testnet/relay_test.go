package testnet

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/localapi"
)

// relayTrio is hub (relay.serve), laptop (registered with hub, naming first a
// relay nobody knows, then hub) and caller, all gossiping, with no via in any
// peer book: the caller learns laptop's relays from its signed record only.
func relayTrio(t *testing.T) (c *Cluster, hub, laptop, caller *Member) {
	t.Helper()
	names := []string{"hub", "laptop", "caller"}
	cfg := map[string]string{}
	for _, n := range names {
		cfg[n] = "membership:\n  enabled: true\n"
	}
	c = NewCluster(t, 3, Options{Names: names, Config: cfg})
	hub, laptop, caller = c.Member("hub"), c.Member("laptop"), c.Member("caller")
	hub.AppendConfig(t, "relay:\n  serve: true\n")
	ghost, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	laptop.AddPeerAt(t, "ghost", "127.0.0.1:1", ghost.Public().String())
	laptop.AppendConfig(t, "relay:\n  via: [ghost, hub]\n")
	// relay.* and gossip seeds are read at start.
	for _, m := range c.Members {
		m.Stop(t)
		m.Start(t)
	}
	laptop.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	laptop.Grant(t, caller.ID.String(), "echo")
	return c, hub, laptop, caller
}

func gossipMember(m *Member, k identity.PublicKey) (membership.Member, bool) {
	for _, g := range m.Node().GossipMembers() {
		if g.Record.Key == k {
			return g, true
		}
	}
	return membership.Member{}, false
}

// TestRecordRelaysRouteCalls: laptop's signed record names its relays; a
// caller with no via reaches it through hub (the relay it knows; the unknown
// one is skipped), hub forwards the call's bytes, and with hub stopped the
// call fails although laptop itself is up.
func TestRecordRelaysRouteCalls(t *testing.T) {
	_, hub, laptop, caller := relayTrio(t)
	eventually(t, 20*time.Second, "caller learns laptop's relays and routes via hub", func() bool {
		g, ok := gossipMember(caller, laptop.ID)
		return ok && len(g.Record.Relays) == 2 && g.Record.Relays[1] == hub.ID && g.Via == hub.ID
	})
	if g, _ := gossipMember(caller, hub.ID); !g.Via.IsZero() {
		t.Fatalf("hub names no relays but is shown via %s", g.Via.Short())
	}
	before := hub.Node().RelayForwarded()
	marker := `{"note":"through-the-relay"}`
	var out string
	eventually(t, 20*time.Second, "a call through hub once laptop is registered", func() bool {
		o := caller.Call(t, "laptop", "echo", marker)
		out = o.Out
		return o.Err == nil
	})
	if !strings.Contains(out, "through-the-relay") {
		t.Fatalf("laptop answered %q", out)
	}
	if hub.Node().RelayForwarded() <= before {
		t.Fatal("the call did not pass through hub's relay")
	}
	hub.Stop(t)
	eventually(t, 20*time.Second, "with hub stopped, laptop is unreachable", func() bool {
		return caller.Call(t, "laptop", "echo", `{}`).Code == refusal.ExitUnreachable
	})
}

// TestRelayRefusalNamesTheRelay: with laptop gone from hub, hub refuses the
// circuit, and the caller's refusal says which relay refused and why, not
// merely that a connection was lost.
func TestRelayRefusalNamesTheRelay(t *testing.T) {
	_, hub, laptop, caller := relayTrio(t)
	eventually(t, 20*time.Second, "a call through hub", func() bool {
		return caller.Call(t, "laptop", "echo", `{}`).Err == nil
	})
	laptop.Stop(t)
	var o Outcome
	eventually(t, 20*time.Second, "hub refuses the circuit to the stopped laptop", func() bool {
		o = caller.Call(t, "laptop", "echo", `{}`)
		return o.Err != nil && strings.Contains(o.Err.Error(), string(transport.RelayNotRegistered))
	})
	if !strings.Contains(o.Err.Error(), "relay "+hub.ID.Short()) || o.Code != refusal.ExitUnreachable {
		t.Fatalf("refusal %v; want it to name relay %s, exit %d", o, hub.ID.Short(), refusal.ExitUnreachable)
	}
}

// TestRecordRelaysShownAsVia: `treaty members` (GET /v1/members) names the
// relay a member is reached through.
func TestRecordRelaysShownAsVia(t *testing.T) {
	_, hub, laptop, caller := relayTrio(t)
	eventually(t, 20*time.Second, "members lists laptop via hub", func() bool {
		ms, err := caller.Client().Members(t.Context())
		if err != nil {
			return false
		}
		return slices.ContainsFunc(ms, func(m localapi.MemberInfo) bool {
			return m.ID == laptop.ID.String() && m.Via == hub.ID.String()
		})
	})
}
