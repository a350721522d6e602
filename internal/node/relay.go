package node

import (
	"context"
	"crypto/tls"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Relays (docs/membership.md, "Relays"): relay.serve makes this node relay for
// the keys in its peer book; relay.via keeps this node registered with those
// peers' relays; peers[].via dials a peer through its relay. The TLS session
// with a peer reached through a relay runs end to end: the relay forwards
// ciphertext only. relay.serve and relay.via are read at start; peers[].via at
// every dial.

// prepareRelay registers the relay protocol when relay.serve is on. It must
// run before the transport starts; the returned function (nil when there is
// nothing to run) serves the relay and keeps registrations, after it starts.
func (n *Node) prepareRelay() func(ctx context.Context) {
	st := n.state.Load()
	var relay *transport.Relay
	if st.cfg.Relay.Serve {
		relay = transport.NewRelay(n.tr, transport.RelayConfig{})
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
		return nil
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
	}
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
// peer's relay, any other at its addr.
func (n *Node) route(_ context.Context, k identity.PublicKey) (transport.Route, error) {
	st := n.state.Load()
	p, ok := st.peers[k]
	if !ok {
		return transport.Route{}, refusal.New(refusal.StageResolve, "peer %s is not in the peer book", k.Short())
	}
	if p.Via == "" {
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
