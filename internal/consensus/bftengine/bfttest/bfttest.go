// Package bfttest builds real networks for BFT engine tests and benchmarks:
// one transport per member on 127.0.0.1:0 (pinned-key mutual TLS), each with
// the others as peers, and a consensus.TransportNetwork per member; plus a
// Network wrapper that delays every write by a fixed time (user-space
// latency, since the kernel here has no netem).
package bfttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Cluster is n nodes, each with a started transport, and one BFT group of
// them. Keys are sorted; with NewCluster every node is a founding member and
// Keys[i] has node ID i+1. The transports and Networks admit every node of
// the cluster: the engine decides who is a member.
type Cluster struct {
	Keys       []identity.PrivateKey
	Transports []*transport.Transport
	Group      fsm.Group
	addrs      map[identity.PublicKey]string
	all        memberSet
}

type memberSet map[identity.PublicKey]bool

func (s memberSet) Admitted(k identity.PublicKey) bool { return s[k] }

// NewCluster starts n transports for a group called name of all n nodes.
// Everything is closed by tb.Cleanup.
func NewCluster(tb testing.TB, name string, n int) *Cluster {
	tb.Helper()
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return NewClusterOf(tb, name, n, all)
}

// NewClusterOf starts n transports; the group called name is founded by the
// nodes at the given positions of Keys (sorted), the others may be added
// later. Everything is closed by tb.Cleanup.
func NewClusterOf(tb testing.TB, name string, n int, founders []int) *Cluster {
	tb.Helper()
	c := &Cluster{addrs: map[identity.PublicKey]string{}}
	set := memberSet{}
	for i := range n {
		k, err := identity.FromSeed(bytes.Repeat([]byte{byte(0x40 + i)}, 32))
		if err != nil {
			tb.Fatal(err)
		}
		c.Keys = append(c.Keys, k)
		set[k.Public()] = true
	}
	slices.SortFunc(c.Keys, func(a, b identity.PrivateKey) int { return bytes.Compare(a.Public().Bytes(), b.Public().Bytes()) })
	c.all = set
	var pubs []identity.PublicKey
	for _, i := range founders {
		pubs = append(pubs, c.Keys[i].Public())
	}
	g, err := fsm.NewGroup(name, fsm.ModeBFT, 0, pubs)
	if err != nil {
		tb.Fatal(err)
	}
	c.Group = g
	for _, k := range c.Keys {
		tr, err := transport.New(transport.Config{Identity: k, Peers: set, Listen: "127.0.0.1:0",
			MaxConnsPerPeer: 8, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			tb.Fatal(err)
		}
		if err := tr.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { tr.Close() })
		c.Transports = append(c.Transports, tr)
		c.addrs[k.Public()] = tr.Addr().String()
	}
	return c
}

// Network registers the group's protocol on member i's transport and returns
// its Network. Closing the engine closes it; call Network again to restart.
func (c *Cluster) Network(tb testing.TB, i int) consensus.Network {
	tb.Helper()
	resolve := func(_ context.Context, k identity.PublicKey) (string, error) {
		a, ok := c.addrs[k]
		if !ok {
			return "", fmt.Errorf("bfttest: no address for %s", k.Short())
		}
		return a, nil
	}
	n, err := consensus.NewTransportNetwork(c.Transports[i], c.Group, resolve, c.all.Admitted, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// RTT measures the round trip of a 64-byte message between members 0 and 1
// over Networks of a separate group ("ping") on the same transports, each
// passed through wrap (nil: as is), and returns rounds samples, sorted.
func (c *Cluster) RTT(tb testing.TB, wrap func(consensus.Network) consensus.Network, rounds int) []time.Duration {
	tb.Helper()
	g, err := fsm.NewGroup("ping", fsm.ModeBFT, 0, c.Group.Members)
	if err != nil {
		tb.Fatal(err)
	}
	resolve := func(_ context.Context, k identity.PublicKey) (string, error) { return c.addrs[k], nil }
	nets := make([]consensus.Network, 2)
	for i := range nets {
		n, err := consensus.NewTransportNetwork(c.Transports[i], g, resolve, g.IsMember, slog.New(slog.DiscardHandler))
		if err != nil {
			tb.Fatal(err)
		}
		nets[i] = n
		if wrap != nil {
			nets[i] = wrap(n)
		}
	}
	defer nets[0].Listener().Close()
	defer nets[1].Listener().Close()
	go func() {
		s, err := nets[1].Listener().Accept()
		if err != nil {
			return
		}
		defer s.Close()
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := nets[0].Dial(ctx, c.Keys[1].Public())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 64)
	out := make([]time.Duration, 0, rounds)
	for range rounds {
		t0 := time.Now()
		if _, err := conn.Write(buf); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			tb.Fatal(err)
		}
		out = append(out, time.Since(t0))
	}
	slices.Sort(out)
	return out
}

// Delay wraps a Network so that every byte written on its connections
// reaches the far end d later (order kept, no bandwidth limit). Wrap every
// member's Network to delay both directions by d: the round trip is 2d.
func Delay(n consensus.Network, d time.Duration) consensus.Network {
	return &delayNet{Network: n, d: d, ln: &delayListener{Listener: n.Listener(), d: d}}
}

type delayNet struct {
	consensus.Network
	d  time.Duration
	ln *delayListener
}

func (n *delayNet) Dial(ctx context.Context, k identity.PublicKey) (net.Conn, error) {
	c, err := n.Network.Dial(ctx, k)
	if err != nil {
		return nil, err
	}
	return newDelayConn(c, n.d), nil
}

func (n *delayNet) Listener() net.Listener { return n.ln }

func (n *delayNet) Peer(c net.Conn) (identity.PublicKey, bool) {
	if dc, ok := c.(*delayConn); ok {
		c = dc.Conn
	}
	return n.Network.Peer(c)
}

type delayListener struct {
	net.Listener
	d time.Duration
}

func (l *delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newDelayConn(c, l.d), nil
}

type chunk struct {
	at time.Time
	b  []byte
}

type delayConn struct {
	net.Conn
	d    time.Duration
	q    chan chunk
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	err  error
}

func newDelayConn(c net.Conn, d time.Duration) *delayConn {
	dc := &delayConn{Conn: c, d: d, q: make(chan chunk, 4096), done: make(chan struct{})}
	go dc.pump()
	return dc
}

func (c *delayConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case c.q <- chunk{at: time.Now().Add(c.d), b: append([]byte{}, b...)}:
		return len(b), nil
	case <-c.done:
		return 0, net.ErrClosed
	}
}

func (c *delayConn) pump() {
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-c.done:
			return
		case ch := <-c.q:
			if w := time.Until(ch.at); w > 0 {
				t.Reset(w)
				select {
				case <-t.C:
				case <-c.done:
					return
				}
			}
			if _, err := c.Conn.Write(ch.b); err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				c.Close()
				return
			}
		}
	}
}

// SetWriteDeadline applies to the delayed writes' real connection only.
func (c *delayConn) SetWriteDeadline(time.Time) error { return nil }

func (c *delayConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}
