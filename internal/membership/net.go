package membership

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Proto is the ALPN protocol gossip speaks on the node's transport. Register
// it (transport.Listener(Proto)) before transport.Start, so that the first
// peers to gossip with this node are not refused as speaking an unknown
// protocol; New registers it too.
const Proto = "treaty-gossip/1"

// A gossip connection starts, after the TLS handshake and the transport's
// acceptance byte, with a hello from the dialer: one byte saying what the
// connection carries and the dialer's gossip address (one length byte, then
// the address as an IP literal and a port), which is where replies to its
// packets go.
const (
	connPacket = 'P' // length-prefixed memberlist packets, both directions
	connStream = 'S' // one memberlist stream (push-pull), raw
)

const (
	maxFrame     = 64 << 10        // one packet; memberlist's are at most packetBufferSize
	helloTimeout = 5 * time.Second // a dialer that sends no hello in time is cut off
	writeTimeout = 2 * time.Second // a packet write that blocks longer is a lost packet
	packetQueue  = 1024            // received packets waiting for memberlist; beyond it they are dropped, as UDP would
)

// packetBufferSize is memberlist's UDPBufferSize here. Packets are TCP frames,
// so they need not fit a UDP datagram; a larger buffer carries more piggybacked
// broadcasts (a record alone is up to 512 bytes) per probe.
const packetBufferSize = 16 << 10

// peerAddr is the net.Addr of a gossip peer: its key (proved by TLS) and the
// gossip address it announced in its hello.
type peerAddr struct {
	key  identity.PublicKey
	addr string
}

func (a *peerAddr) Network() string { return "treaty-gossip" }
func (a *peerAddr) String() string  { return a.addr }

// gossipNet is a memberlist.NodeAwareTransport over internal/transport: every
// packet and stream travels inside mutually authenticated TLS to the key named
// by the memberlist node name. There is no UDP.
type gossipNet struct {
	tr        *transport.Transport
	ln        net.Listener
	self      identity.PublicKey
	advertise *net.TCPAddr
	log       *slog.Logger
	// drop, if set, makes all traffic with a peer vanish (fault injection).
	drop func(identity.PublicKey) bool
	// inspect checks a packet from peer before memberlist sees it; false drops it.
	inspect func(peer identity.PublicKey, pkt []byte) bool
	// outbound sees every packet memberlist sends, before it is queued or
	// dropped (localview.go).
	outbound func(pkt []byte)
	// inspectStream wraps an inbound or outbound stream's reads the same way.
	inspectStream func(peer identity.PublicKey, c net.Conn) net.Conn
	// dialTimeout bounds a background packet connection dial.
	dialTimeout time.Duration
	// keyFor finds the key for a gossip address when memberlist gives no name.
	keyFor func(addr string) (identity.PublicKey, bool)

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	links  map[identity.PublicKey]*link
	conns  map[net.Conn]struct{} // every open gossip connection, to close on Shutdown
	closed bool

	bytesOut, bytesIn, dropped atomic.Uint64
}

// link is the pooled packet connection to one peer. mu serialises dialing and
// writing, so at most one dial per peer is in flight.
type link struct {
	mu      sync.Mutex
	c       net.Conn
	dialing bool     // a background dial is running
	queue   [][]byte // frames waiting for it
}

func newGossipNet(tr *transport.Transport, advertise *net.TCPAddr, log *slog.Logger) *gossipNet {
	ctx, cancel := context.WithCancel(context.Background())
	g := &gossipNet{
		tr:          tr,
		ln:          tr.Listener(Proto),
		self:        tr.Self(),
		advertise:   advertise,
		log:         log,
		packetCh:    make(chan *memberlist.Packet, packetQueue),
		streamCh:    make(chan net.Conn),
		ctx:         ctx,
		cancel:      cancel,
		links:       make(map[identity.PublicKey]*link),
		conns:       make(map[net.Conn]struct{}),
		dialTimeout: 5 * time.Second,
	}
	return g
}

func (g *gossipNet) start() {
	g.wg.Add(1)
	go g.acceptLoop()
}

func (g *gossipNet) isCut(peer identity.PublicKey) bool { return g.drop != nil && g.drop(peer) }

func (g *gossipNet) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *gossipNet) untrack(c net.Conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	_ = c.Close()
}

func (g *gossipNet) acceptLoop() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Debug("membership: accept", "err", err)
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.serve(c)
		}()
	}
}

// serve reads the hello of an accepted connection and hands it on.
func (g *gossipNet) serve(c net.Conn) {
	peer, ok := transport.PeerFromConn(c)
	if !ok || g.isCut(peer) || !g.track(c) {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	br := bufio.NewReader(c)
	kind, addr, err := readHello(br)
	if err != nil {
		g.log.Debug("membership: bad hello", "peer", peer.Short(), "err", err)
		g.untrack(c)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	from := &peerAddr{key: peer, addr: addr}
	switch kind {
	case connPacket:
		g.adopt(peer, c)
		g.readPackets(c, br, from)
	case connStream:
		var conn net.Conn = &bufConn{Conn: c, r: br, remote: from, counter: &g.bytesOut}
		if g.inspectStream != nil {
			conn = g.inspectStream(peer, conn)
		}
		conn = &untrackOnClose{Conn: conn, g: g, raw: c}
		select {
		case g.streamCh <- conn:
		case <-g.ctx.Done():
			g.untrack(c)
		}
	default:
		g.untrack(c)
	}
}

// adopt makes an accepted packet connection the link to peer if there is
// none, so replies reuse it instead of dialing back.
func (g *gossipNet) adopt(peer identity.PublicKey, c net.Conn) {
	l := g.link(peer)
	if l == nil {
		return
	}
	l.mu.Lock() // may wait for our own dial to peer; that never waits for us
	if l.c == nil {
		l.c = c
	}
	l.mu.Unlock()
}

func (g *gossipNet) link(peer identity.PublicKey) *link {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	l, ok := g.links[peer]
	if !ok {
		l = &link{}
		g.links[peer] = l
	}
	return l
}

// readPackets delivers the frames of a packet connection until it fails.
func (g *gossipNet) readPackets(c net.Conn, r *bufio.Reader, from *peerAddr) {
	defer func() {
		g.untrack(c)
		if l := g.link(from.key); l != nil {
			l.mu.Lock()
			if l.c == c {
				l.c = nil
			}
			l.mu.Unlock()
		}
	}()
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > maxFrame {
			g.log.Debug("membership: bad frame length", "peer", from.key.Short(), "len", n)
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		g.bytesIn.Add(uint64(n) + 4)
		if g.isCut(from.key) {
			continue
		}
		if g.inspect != nil && !g.inspect(from.key, buf) {
			continue
		}
		select {
		case g.packetCh <- &memberlist.Packet{Buf: buf, From: from, Timestamp: time.Now()}:
		case <-g.ctx.Done():
			return
		default:
			g.dropped.Add(1)
		}
	}
}

func readHello(r *bufio.Reader) (byte, string, error) {
	kind, err := r.ReadByte()
	if err != nil {
		return 0, "", err
	}
	n, err := r.ReadByte()
	if err != nil {
		return 0, "", err
	}
	addr := make([]byte, n)
	if _, err := io.ReadFull(r, addr); err != nil {
		return 0, "", err
	}
	// An IP literal, as every node sends its advertise address: a name would
	// make this node resolve whatever a peer chose, past every deadline here.
	ap, err := netip.ParseAddrPort(string(addr))
	if err != nil {
		return 0, "", fmt.Errorf("hello address: %w", err)
	}
	if ap.Port() == 0 {
		return 0, "", fmt.Errorf("hello address %q has port 0", addr)
	}
	return kind, string(addr), nil
}

func (g *gossipNet) hello(kind byte) []byte {
	a := g.advertise.String()
	return append([]byte{kind, byte(len(a))}, a...)
}

// dial opens a gossip connection of kind to peer at addr.
func (g *gossipNet) dial(peer identity.PublicKey, addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	if g.isCut(peer) {
		return nil, fmt.Errorf("membership: dial %s: %w", peer.Short(), transport.ErrUnreachable)
	}
	ctx, cancel := context.WithTimeout(g.ctx, timeout)
	defer cancel()
	c, err := g.tr.Dial(ctx, addr, peer, Proto)
	if err != nil {
		return nil, err
	}
	if !g.track(c) {
		_ = c.Close()
		return nil, fmt.Errorf("membership: %w", net.ErrClosed)
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(g.hello(kind)); err != nil {
		g.untrack(c)
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}

func (g *gossipNet) resolve(a memberlist.Address) (identity.PublicKey, error) {
	if a.Name != "" {
		k, err := identity.ParseDID(a.Name)
		if err != nil {
			return identity.PublicKey{}, fmt.Errorf("membership: node name is not a key: %w", err)
		}
		return k, nil
	}
	if g.keyFor != nil {
		if k, ok := g.keyFor(a.Addr); ok {
			return k, nil
		}
	}
	return identity.PublicKey{}, fmt.Errorf("membership: no verified key for %s", a.Addr)
}

// forget closes and drops the pooled packet connection to peer.
func (g *gossipNet) forget(peer identity.PublicKey) {
	g.mu.Lock()
	l := g.links[peer]
	delete(g.links, peer)
	g.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		_ = l.c.Close()
		l.c = nil
	}
	l.queue = nil
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (g *gossipNet) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return g.advertise.IP, g.advertise.Port, nil
}

// WriteTo implements memberlist.Transport; it needs a verified record for addr.
func (g *gossipNet) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends one packet over the pooled connection to the node.
// It never waits for a handshake: without a connection the packet is queued
// and a dial starts in the background, so a slow or dead peer cannot stall
// memberlist's probe and gossip loops. Like a datagram, it may be lost.
func (g *gossipNet) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if g.outbound != nil {
		g.outbound(b)
	}
	peer, err := g.resolve(a)
	if err != nil {
		return time.Time{}, err
	}
	if len(b) > maxFrame {
		return time.Time{}, fmt.Errorf("membership: packet of %d bytes exceeds %d", len(b), maxFrame)
	}
	if g.isCut(peer) {
		return time.Now(), nil
	}
	l := g.link(peer)
	if l == nil {
		return time.Time{}, fmt.Errorf("membership: %w", net.ErrClosed)
	}
	frame := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(frame, uint32(len(b)))
	copy(frame[4:], b)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return g.writeLocked(l, peer, frame)
	}
	if len(l.queue) < linkQueue {
		l.queue = append(l.queue, frame)
	} else {
		g.dropped.Add(1)
	}
	g.connectLocked(l, peer, a.Addr)
	return time.Now(), nil
}

// linkQueue bounds the packets waiting for a peer's connection.
const linkQueue = 64

// writeLocked writes one frame on l.c. A failure closes the connection and
// comes back as a *net.OpError "write", which memberlist takes as the remote
// failing (it moves to indirect probes at once).
func (g *gossipNet) writeLocked(l *link, peer identity.PublicKey, frame []byte) (time.Time, error) {
	_ = l.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := l.c.Write(frame); err != nil {
		_ = l.c.Close() // its reader goroutine untracks it
		l.c = nil
		return time.Time{}, &net.OpError{Op: "write", Net: "tcp", Err: fmt.Errorf("membership: packet to %s: %w", peer.Short(), err)}
	}
	g.bytesOut.Add(uint64(len(frame)))
	return time.Now(), nil
}

// connectLocked starts a background dial of l unless one is running.
func (g *gossipNet) connectLocked(l *link, peer identity.PublicKey, addr string) {
	if l.dialing {
		return
	}
	// Add under g.mu, after checking closed: Shutdown sets closed under g.mu
	// before it waits, so no Add can race its Wait.
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	l.dialing = true
	go func() {
		defer g.wg.Done()
		c, err := g.dial(peer, addr, connPacket, g.dialTimeout)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.dialing = false
		if err != nil {
			l.queue = nil
			g.log.Debug("membership: packet connection", "peer", peer.Short(), "addr", addr, "err", err)
			return
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.readPackets(c, bufio.NewReader(c), &peerAddr{key: peer, addr: addr})
		}()
		if l.c == nil {
			l.c = c
		}
		q := l.queue
		l.queue = nil
		for _, f := range q {
			if _, err := g.writeLocked(l, peer, f); err != nil {
				return
			}
		}
	}()
}

// warm opens the packet connection to a new member ahead of the first probe.
// Only the side with the lower key does, so a pair shares one connection.
func (g *gossipNet) warm(peer identity.PublicKey, addr string) {
	if bytes.Compare(g.self.Bytes(), peer.Bytes()) >= 0 || g.isCut(peer) {
		return
	}
	l := g.link(peer)
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		g.connectLocked(l, peer, addr)
	}
}

// PacketCh implements memberlist.Transport.
func (g *gossipNet) PacketCh() <-chan *memberlist.Packet { return g.packetCh }

// DialTimeout implements memberlist.Transport; it needs a verified record for addr.
func (g *gossipNet) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to the node, pinned to the key its name
// spells.
func (g *gossipNet) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	peer, err := g.resolve(a)
	if err != nil {
		return nil, err
	}
	c, err := g.dial(peer, a.Addr, connStream, timeout)
	if err != nil {
		return nil, err
	}
	var conn net.Conn = &bufConn{Conn: c, r: bufio.NewReader(c), remote: &peerAddr{key: peer, addr: a.Addr}, counter: &g.bytesOut}
	if g.inspectStream != nil {
		conn = g.inspectStream(peer, conn)
	}
	return &untrackOnClose{Conn: conn, g: g, raw: c}, nil
}

// StreamCh implements memberlist.Transport.
func (g *gossipNet) StreamCh() <-chan net.Conn { return g.streamCh }

// Shutdown implements memberlist.Transport: it closes the gossip listener and
// every gossip connection and waits for the goroutines.
func (g *gossipNet) Shutdown() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	conns := make([]net.Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	g.cancel()
	err := g.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	g.wg.Wait()
	return err
}

// bufConn is a stream whose first bytes were read through r (the hello).
type bufConn struct {
	net.Conn
	r       *bufio.Reader
	remote  net.Addr
	counter *atomic.Uint64
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *bufConn) RemoteAddr() net.Addr       { return c.remote }
func (c *bufConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.counter != nil {
		c.counter.Add(uint64(n))
	}
	return n, err
}

// untrackOnClose forgets a dialed stream when memberlist closes it.
type untrackOnClose struct {
	net.Conn
	g   *gossipNet
	raw net.Conn
}

func (c *untrackOnClose) Close() error {
	err := c.Conn.Close()
	c.g.untrack(c.raw)
	return err
}
