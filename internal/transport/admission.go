package transport

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// AddrSource tells which source addresses belong to known peers (for example
// the addresses of the peer book). Their connections may use the reserved
// share of pending handshake slots, which strangers cannot take. KnownAddr is
// called for every accepted connection, before any byte is read: it must be
// fast and not block. An address is only a hint, never an admission: the
// handshake still checks the key.
type AddrSource interface {
	KnownAddr(netip.Addr) bool
}

const (
	// A source is an IPv4 address or an IPv6 /64, the smallest block one
	// customer usually gets.
	sourceBitsV6 = 64

	// verifiedAddrs bounds the memory of sources that completed an admitted
	// handshake (they count as known); verifiedTTL is how long one is kept.
	verifiedAddrs = 4096
	verifiedTTL   = 24 * time.Hour
)

// source returns the source block of a remote address; the zero Prefix if it
// is not an IP address (all such connections share one source).
func source(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch v := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(v.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	case ip.Is6():
		p, _ := ip.WithZone("").Prefix(sourceBitsV6)
		return p
	}
	return netip.Prefix{}
}

// admission bounds server handshakes in progress, before the client is
// verified: in total, per source, and with a share kept for known sources.
type admission struct {
	max       int // all pending handshakes
	reserved  int // of max, usable only by known sources
	perSource int

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix]int
	verified map[netip.Prefix]time.Time // sources of admitted handshakes -> last one
}

func newAdmission(max, reserved, perSource int) *admission {
	return &admission{max: max, reserved: reserved, perSource: perSource,
		bySource: make(map[netip.Prefix]int), verified: make(map[netip.Prefix]time.Time)}
}

// enter takes a pending slot for src, or returns the reason it may not.
func (a *admission) enter(src netip.Prefix, known bool, now time.Time) (Reason, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !known {
		if at, ok := a.verified[src]; ok && now.Sub(at) < verifiedTTL {
			known = true
		}
	}
	if n := a.bySource[src]; n >= a.perSource {
		return ReasonSourceLimit, fmt.Errorf("%d handshakes from %s already in progress", n, src)
	}
	limit := a.max
	if !known {
		limit -= a.reserved
	}
	if a.total >= limit {
		return ReasonOverload, fmt.Errorf("%d handshakes already in progress (%d for strangers, %d in all)",
			a.total, a.max-a.reserved, a.max)
	}
	a.total++
	a.bySource[src]++
	return 0, nil
}

// leave gives back a slot taken by enter.
func (a *admission) leave(src netip.Prefix) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.bySource[src] <= 1 {
		delete(a.bySource, src)
	} else {
		a.bySource[src]--
	}
}

// remember records that src completed an admitted handshake at now.
func (a *admission) remember(src netip.Prefix, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.verified[src]; !ok && len(a.verified) >= verifiedAddrs {
		var oldest netip.Prefix
		var at time.Time
		for p, t := range a.verified {
			if at.IsZero() || t.Before(at) {
				oldest, at = p, t
			}
		}
		delete(a.verified, oldest)
	}
	a.verified[src] = now
}

func (a *admission) pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// fdBudget derives the defaults of MaxPendingHandshakes and MaxConns from the
// open-file limit n (RLIMIT_NOFILE; Go raises the soft limit to the hard one
// at start-up): a reserve of max(256, n/4) descriptors is left to backends
// (pipes of exec backends), the audit store and configuration files; of the
// rest, an eighth (16 to 512) for pending handshakes and three quarters of
// what remains (16 to 4096) for accepted connections, the last quarter for
// pooled outbound connections. With n = 1024: 96 pending, 504 connections;
// with n >= 8000: 512 and 4096.
func fdBudget(n int) (pending, conns int) {
	if n <= 0 {
		n = 4096 // unknown limit: assume a common default
	}
	budget := n - max(256, n/4)
	pending = min(max(budget/8, 16), 512)
	conns = min(max((budget-pending)*3/4, 16), 4096)
	return pending, conns
}
