package node

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// peerAddrs tells the transport which source addresses belong to peers in the
// peer book (transport.AddrSource), so that their handshakes may use the
// pending slots strangers cannot take. Only IP literals and "localhost" count:
// resolving names would put DNS in the accept path. A peer named by hostname
// becomes known anyway once it completes a handshake (the transport remembers
// sources of admitted handshakes for 24h).
type peerAddrs struct {
	n     *Node
	cache atomic.Pointer[peerAddrSet]
}

// peerAddrSet is the address set of one loaded state; a reload makes a new
// state, and so a new set on the next lookup.
type peerAddrSet struct {
	st  *state
	ips map[netip.Addr]struct{}
}

func newPeerAddrs(n *Node) *peerAddrs { return &peerAddrs{n: n} }

// KnownAddr reports whether ip is the host of a peer book address.
func (p *peerAddrs) KnownAddr(ip netip.Addr) bool {
	st := p.n.state.Load()
	if st == nil {
		return false
	}
	set := p.cache.Load()
	if set == nil || set.st != st {
		set = &peerAddrSet{st: st, ips: peerIPs(st)}
		p.cache.Store(set)
	}
	_, ok := set.ips[ip.Unmap()]
	return ok
}

func peerIPs(st *state) map[netip.Addr]struct{} {
	ips := make(map[netip.Addr]struct{}, len(st.peers))
	for _, p := range st.peers {
		host, _, err := net.SplitHostPort(p.Addr)
		if err != nil {
			continue
		}
		if host == "localhost" {
			ips[netip.AddrFrom4([4]byte{127, 0, 0, 1})] = struct{}{}
			ips[netip.IPv6Loopback()] = struct{}{}
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			ips[ip.Unmap().WithZone("")] = struct{}{}
		}
	}
	return ips
}
