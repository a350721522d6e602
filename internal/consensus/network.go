package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Network connects the members of one group. Every connection it yields, in
// either direction, has a far end that proved a current member's key.
// Engines depend on this interface only, so tests can wrap it to drop, delay
// or partition traffic.
type Network interface {
	// Dial opens a connection to member.
	Dial(ctx context.Context, member identity.PublicKey) (net.Conn, error)
	// Listener delivers connections that members opened to this member.
	Listener() net.Listener
	// Peer returns the member key of a connection from Listener.
	Peer(c net.Conn) (identity.PublicKey, bool)
}

// Proto is the ALPN protocol that carries a group's traffic: one per group,
// so that the transport's per-peer connection limit applies per group, and
// stable across the group's epochs (its ID changes with every membership
// change; its name and mode do not).
func Proto(mode fsm.Mode, name string) string {
	return "treaty-" + string(mode) + "/1/" + name
}

// TransportNetwork is a Network on the node's transport.
type TransportNetwork struct {
	tr       *transport.Transport
	proto    string
	resolve  transport.Resolver
	isMember func(identity.PublicKey) bool
	ln       *memberListener
}

// NewTransportNetwork registers the group's protocol on tr. resolve gives a
// member's address; isMember is consulted on every connection, so a removed
// member is refused from the next one on. Call it before tr.Start, or the
// first connections of the group are refused as an unknown protocol.
func NewTransportNetwork(tr *transport.Transport, g fsm.Group, resolve transport.Resolver, isMember func(identity.PublicKey) bool, log *slog.Logger) (*TransportNetwork, error) {
	switch {
	case tr == nil:
		return nil, errors.New("consensus: network: nil transport")
	case resolve == nil:
		return nil, errors.New("consensus: network: nil resolver")
	case isMember == nil:
		return nil, errors.New("consensus: network: nil membership check")
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("consensus: network: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	proto := Proto(g.Mode, g.Name)
	n := &TransportNetwork{tr: tr, proto: proto, resolve: resolve, isMember: isMember}
	n.ln = &memberListener{Listener: tr.Listener(proto), isMember: isMember, log: log, proto: proto}
	return n, nil
}

// Dial implements Network.
func (n *TransportNetwork) Dial(ctx context.Context, member identity.PublicKey) (net.Conn, error) {
	if !n.isMember(member) {
		return nil, fmt.Errorf("consensus: dial %s: %w", member.Short(), ErrNotMember)
	}
	addr, err := n.resolve(ctx, member)
	if err != nil {
		return nil, fmt.Errorf("consensus: dial %s: %w", member.Short(), err)
	}
	return n.tr.Dial(ctx, addr, member, n.proto)
}

// Listener implements Network. Closing it unregisters the group's protocol.
func (n *TransportNetwork) Listener() net.Listener { return n.ln }

// Peer implements Network.
func (n *TransportNetwork) Peer(c net.Conn) (identity.PublicKey, bool) {
	return transport.PeerFromConn(c)
}

// memberListener drops connections from keys that are not members: the
// transport admitted them as peers of the node, not of this group.
type memberListener struct {
	net.Listener
	isMember func(identity.PublicKey) bool
	log      *slog.Logger
	proto    string
}

func (l *memberListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		k, ok := transport.PeerFromConn(c)
		if ok && l.isMember(k) {
			return c, nil
		}
		l.log.Warn("consensus: connection from a non-member closed", "event", "consensus.non_member", "proto", l.proto, "peer", k.Short())
		_ = c.Close()
	}
}
