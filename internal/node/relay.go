package node

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Relays (docs/membership.md, "Relays"): relay.serve makes this node relay for
// the keys in its peer book; relay.via keeps this node registered with those
// peers' relays and names them in its gossip record; peers[].via dials a peer
// through its relay, and without it a peer whose gossip record names relays is
// dialed through the first of them this node can reach. The TLS session with a
// peer reached through a relay runs end to end: the relay forwards ciphertext
// only. relay.serve and relay.via are read at start; peers[].via and gossip
// records at every dial.

// prepareRelay registers the relay protocol when relay.serve is on. It must
// run before the transport starts; the returned function (nil when there is
// nothing to run) serves the relay and keeps registrations, after it starts.
func (n *Node) prepareRelay() (func(ctx context.Context), error) {
	st := n.state.Load()
	var relay *transport.Relay
	if rc := st.cfg.Relay; rc.Serve {
		var err error
		relay, err = transport.NewRelay(n.tr, transport.RelayConfig{
			MaxRegistrations:   rc.MaxRegistrations,
			MaxCircuits:        rc.MaxCircuits,
			MaxCircuitsPerPeer: rc.MaxCircuitsPerPeer,
			MaxBytes:           rc.MaxCircuitBytes,
			BytesPerSecond:     rc.BytesPerSecond,
			MaxDuration:        rc.MaxCircuitDuration.D(),
		})
		if err != nil {
			return nil, fmt.Errorf("node: relay.serve: %w", err)
		}
		n.adm.relay.Store(relay)
	}
	type target struct {
		addr string
		key  identity.PublicKey
	}
	var via []target
	for _, ref := range st.cfg.Relay.Via {
		k, ok := n.peerKey(st, ref)
		if !ok { // validated at load; a reload may have removed it since
			n.log.Warn("relay.via names no peer; not registering", "relay", ref)
			continue
		}
		via = append(via, target{addr: st.peers[k].Addr, key: k})
	}
	if relay == nil && len(via) == 0 {
		return nil, nil
	}
	return func(ctx context.Context) {
		if relay != nil {
			n.wg.Go(func() {
				if err := relay.Serve(ctx); err != nil && ctx.Err() == nil {
					n.log.Error("relay stopped", "err", err)
				}
			})
		}
		for _, v := range via {
			n.wg.Go(func() { n.tr.RegisterWith(ctx, v.addr, v.key) })
			n.log.Info("registering with relay", "relay", v.key, "addr", v.addr)
		}
	}, nil
}

// RelayForwarded is how many bytes this node has forwarded as a relay since
// it started (0 without relay.serve): ciphertext of circuits between others.
func (n *Node) RelayForwarded() int64 {
	if r := n.adm.relay.Load(); r != nil {
		return r.Forwarded()
	}
	return 0
}

// peerKey finds a peer of st by nickname or did:key.
func (n *Node) peerKey(st *state, ref string) (identity.PublicKey, bool) {
	if k, ok := st.byName[ref]; ok {
		return k, true
	}
	k, err := identity.ParseDID(ref)
	if err != nil {
		return identity.PublicKey{}, false
	}
	_, ok := st.peers[k]
	return k, ok
}

// route implements transport.Router: a peer with via is dialed through that
// peer's relay; one whose gossip record names relays through the first of them
// with a known address (gossipRoute); any other at its addr.
func (n *Node) route(_ context.Context, k identity.PublicKey) (transport.Route, error) {
	st := n.state.Load()
	p, ok := st.peers[k]
	if !ok {
		return transport.Route{}, refusal.New(refusal.StageResolve, "peer %s is not in the peer book", k.Short())
	}
	if p.Via == "" {
		if r, ok := n.gossipRoute(st, k); ok {
			return r, nil
		}
		return transport.Route{Addr: p.Addr}, nil
	}
	rk, ok := n.peerKey(st, p.Via)
	if !ok {
		return transport.Route{}, refusal.New(refusal.StageResolve, "relay %q of peer %s is not in the peer book", p.Via, k.Short())
	}
	return transport.Route{Addr: st.peers[rk].Addr, Relay: rk}, nil
}

// dialPeer opens a proto connection to peer k: through its relay when the
// peer book says via, else at addr.
func (n *Node) dialPeer(ctx context.Context, k identity.PublicKey, addr, proto string) (*tls.Conn, error) {
	r, err := n.route(ctx, k)
	if err != nil || r.Relay.IsZero() {
		return n.tr.Dial(ctx, addr, k, proto)
	}
	return n.tr.DialVia(ctx, r.Addr, r.Relay, k, proto)
}

// gossipRoute finds a relay for k from k's verified gossip record: a member
// that names relays accepts no inbound connections, so it is dialed only
// through them. A relay is usable if it is not refused (revoked, superseded)
// and this node knows where it is: its peer book entry (with an addr and no
// via) or its own gossip record (naming no relays itself). The first usable
// relay gossip does not believe dead wins, else the first usable one (dead is
// a guess; it may be back). None usable: no route, and the caller dials k's
// addr, the only lead it has.
func (n *Node) gossipRoute(st *state, k identity.PublicKey) (transport.Route, bool) {
	g := n.adm.gossip.Load()
	if g == nil {
		return transport.Route{}, false
	}
	m, ok := g.Member(k)
	now := n.now()
	if !ok || len(m.Record.Relays) == 0 || !now.Before(m.Record.Expires) {
		return transport.Route{}, false
	}
	var fallback transport.Route
	for _, rk := range m.Record.Relays {
		if rk == n.self || n.adm.refusedWhy(rk) != "" {
			continue
		}
		rm, known := g.Member(rk)
		var r transport.Route
		switch p, ok := st.peers[rk]; {
		case ok && p.Addr != "" && p.Via == "":
			r = transport.Route{Addr: p.Addr, Relay: rk}
		case known && len(rm.Record.Relays) == 0 && len(rm.Record.Addrs) > 0 && now.Before(rm.Record.Expires):
			r = transport.Route{Addr: rm.Record.Addrs[0], Relay: rk}
		default:
			continue
		}
		if !known || (rm.State != membership.StateDead && rm.State != membership.StateLeft) {
			return r, true
		}
		if fallback.Relay.IsZero() {
			fallback = r
		}
	}
	return fallback, !fallback.Relay.IsZero()
}

// relayKeys are the keys of relay.via, in order, for this node's record (at
// most membership.MaxRelays: the record has room for no more).
func (n *Node) relayKeys(st *state) []identity.PublicKey {
	var out []identity.PublicKey
	for _, ref := range st.cfg.Relay.Via {
		if k, ok := n.peerKey(st, ref); ok && len(out) < membership.MaxRelays {
			out = append(out, k)
		}
	}
	return out
}
