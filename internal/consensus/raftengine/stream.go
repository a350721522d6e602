package raftengine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Every connection of the group's protocol starts with one byte saying which
// stream it carries: raft's RPCs or the forwarding of proposals and reads to
// the leader.
const (
	streamRaft    byte = 'r'
	streamForward byte = 'f'
	// headerTimeout bounds how long an accepted connection may take to send
	// its stream byte.
	headerTimeout = 5 * time.Second
)

// mux accepts the group's connections from the Network, hands raft streams to
// raft's transport and forwarding streams to the forwarder, dials raft
// streams, and tracks every connection so that Close ends them all.
type mux struct {
	net          consensus.Network
	self         identity.PublicKey
	log          *slog.Logger
	serveForward func(c net.Conn, peer identity.PublicKey)

	raftCh chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[*conn]struct{}
	contact map[identity.PublicKey]*atomic.Int64 // unix ns of the last byte read from each member
}

func newMux(n consensus.Network, self identity.PublicKey, log *slog.Logger) *mux {
	return &mux{
		net: n, self: self, log: log,
		raftCh:  make(chan net.Conn),
		done:    make(chan struct{}),
		conns:   map[*conn]struct{}{},
		contact: map[identity.PublicKey]*atomic.Int64{},
	}
}

// conn is a tracked connection that notes when its peer was last heard.
type conn struct {
	net.Conn
	m    *mux
	last *atomic.Int64
	once sync.Once
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

// track wraps c, or closes it and fails if the mux is closed.
func (m *mux) track(c net.Conn, peer identity.PublicKey) (*conn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.done:
		_ = c.Close()
		return nil, net.ErrClosed
	default:
	}
	last := m.contact[peer]
	if last == nil {
		last = new(atomic.Int64)
		m.contact[peer] = last
	}
	last.Store(time.Now().UnixNano())
	tc := &conn{Conn: c, m: m, last: last}
	m.conns[tc] = struct{}{}
	return tc, nil
}

func (m *mux) lastContact(k identity.PublicKey) time.Time {
	m.mu.Lock()
	last := m.contact[k]
	m.mu.Unlock()
	if last == nil {
		return time.Time{}
	}
	return time.Unix(0, last.Load())
}

func (m *mux) start() {
	m.wg.Add(1)
	go m.acceptLoop()
}

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	ln := m.net.Listener()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-m.done:
			default:
				m.log.Warn("raftengine: accept stopped", "event", "consensus.accept", "err", err)
			}
			return
		}
		peer, ok := m.net.Peer(c)
		if !ok {
			_ = c.Close()
			continue
		}
		tc, err := m.track(c, peer)
		if err != nil {
			return
		}
		m.wg.Add(1)
		go m.dispatch(tc, peer)
	}
}

func (m *mux) dispatch(c *conn, peer identity.PublicKey) {
	defer m.wg.Done()
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := c.Read(b[:]); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch b[0] {
	case streamRaft:
		select {
		case m.raftCh <- c:
		case <-m.done:
			_ = c.Close()
		}
	case streamForward:
		m.serveForward(c, peer)
	default:
		m.log.Warn("raftengine: unknown stream refused", "event", "consensus.bad_stream", "peer", peer.Short(), "byte", b[0])
		_ = c.Close()
	}
}

// dial opens a stream of kind to member.
func (m *mux) dial(ctx context.Context, member identity.PublicKey, kind byte) (*conn, error) {
	c, err := m.net.Dial(ctx, member)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(d)
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	return m.track(c, member)
}

// close stops accepting, closes the Network's listener and every tracked
// connection, and waits for the goroutines it started.
func (m *mux) close() {
	m.once.Do(func() {
		m.mu.Lock()
		close(m.done)
		conns := make([]*conn, 0, len(m.conns))
		for c := range m.conns {
			conns = append(conns, c)
		}
		m.mu.Unlock()
		_ = m.net.Listener().Close()
		for _, c := range conns {
			_ = c.Close()
		}
		m.wg.Wait()
	})
}

func (m *mux) raftLayer() raft.StreamLayer { return raftLayer{m} }

// raftLayer is raft's StreamLayer: ServerAddress and ServerID are both a
// member's identity key (its DID string).
type raftLayer struct{ m *mux }

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftCh:
		return c, nil
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

// Close is a no-op: the engine closes the mux after raft's transport.
func (l raftLayer) Close() error { return nil }

func (l raftLayer) Addr() net.Addr { return keyAddr(l.m.self.String()) }

func (l raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	k, err := identity.ParseDID(string(address))
	if err != nil {
		return nil, fmt.Errorf("raftengine: dial %q: %w", address, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := l.m.dial(ctx, k, streamRaft)
	if err != nil {
		return nil, fmt.Errorf("raftengine: dial %s: %w", k.Short(), err)
	}
	return c, nil
}

// keyAddr is a member's key as a net.Addr.
type keyAddr string

func (a keyAddr) Network() string { return "treaty" }
func (a keyAddr) String() string  { return string(a) }
