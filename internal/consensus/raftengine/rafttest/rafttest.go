// Package rafttest builds loopback clusters for consensus tests and
// benchmarks: one real transport per member on 127.0.0.1:0 (pinned-key mutual
// TLS, each admitting the others), a consensus.TransportNetwork per member and
// group, and a Faults controller that partitions, drops and delays traffic in
// user space (the kernel here has no netem).
package rafttest

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

// Key is a deterministic identity for member i (seeded with byte 0x40+i).
func Key(tb testing.TB, i int) identity.PrivateKey {
	tb.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{byte(0x40 + i)}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Cluster is n members' transports on loopback.
type Cluster struct {
	tb     testing.TB
	Keys   []identity.PrivateKey
	Trs    []*transport.Transport
	Faults *Faults
	Log    *slog.Logger

	mu    sync.Mutex
	addrs map[identity.PublicKey]string
}

type admitAll map[identity.PublicKey]bool

func (a admitAll) Admitted(k identity.PublicKey) bool { return a[k] }

// New starts n transports that admit each other; they close with the test.
func New(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, Faults: NewFaults(), addrs: map[identity.PublicKey]string{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	peers := admitAll{}
	for i := range n {
		k := Key(tb, i)
		c.Keys = append(c.Keys, k)
		peers[k.Public()] = true
	}
	for _, k := range c.Keys {
		tr, err := transport.New(transport.Config{Identity: k, Peers: peers, Listen: "127.0.0.1:0", Logger: c.Log})
		if err != nil {
			tb.Fatal(err)
		}
		if err := tr.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = tr.Close() })
		c.Trs = append(c.Trs, tr)
		c.addrs[k.Public()] = tr.Addr().String()
	}
	return c
}

// Pubs is the members' public keys.
func (c *Cluster) Pubs() []identity.PublicKey {
	out := make([]identity.PublicKey, len(c.Keys))
	for i, k := range c.Keys {
		out[i] = k.Public()
	}
	return out
}

// Group is a group of all the cluster's members at epoch 0.
func (c *Cluster) Group(name string, mode fsm.Mode) fsm.Group {
	g, err := fsm.NewGroup(name, mode, 0, c.Pubs())
	if err != nil {
		c.tb.Fatal(err)
	}
	return g
}

func (c *Cluster) resolve(_ context.Context, k identity.PublicKey) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.addrs[k]
	if !ok {
		return "", fmt.Errorf("rafttest: no address for %s", k.Short())
	}
	return a, nil
}

// Network is member i's network for group g, through the cluster's Faults.
// isMember nil admits every cluster member. Each call registers the group's
// protocol anew, so a restarted engine gets a fresh listener.
func (c *Cluster) Network(i int, g fsm.Group, isMember func(identity.PublicKey) bool) consensus.Network {
	c.tb.Helper()
	if isMember == nil {
		all := map[identity.PublicKey]bool{}
		for _, k := range c.Pubs() {
			all[k] = true
		}
		isMember = func(k identity.PublicKey) bool { return all[k] }
	}
	n, err := consensus.NewTransportNetwork(c.Trs[i], g, c.resolve, isMember, c.Log)
	if err != nil {
		c.tb.Fatal(err)
	}
	return c.Faults.Wrap(c.Keys[i].Public(), n)
}

// Echo measures the transport's round trip between member 0 and member 1,
// through the Faults (so a delay counts): it registers an echo protocol on
// member 1, dials it from member 0 and returns the median of rounds one-byte
// round trips on a warm connection.
func (c *Cluster) Echo(rounds int) time.Duration {
	c.tb.Helper()
	const proto = "treaty-bench-echo/1"
	ln := c.Trs[1].Listener(proto)
	defer ln.Close()
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := c.Faults.track(raw, c.Keys[1].Public(), c.Keys[0].Public())
			if err != nil {
				continue
			}
			go func() { defer s.Close(); _, _ = io.Copy(s, s) }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := c.Trs[0].Dial(ctx, c.addrs[c.Keys[1].Public()], c.Keys[1].Public(), proto)
	if err != nil {
		c.tb.Fatal(err)
	}
	conn, err := c.Faults.track(raw, c.Keys[0].Public(), c.Keys[1].Public())
	if err != nil {
		c.tb.Fatal(err)
	}
	defer conn.Close()
	b := []byte{1}
	var ds []time.Duration
	for range rounds {
		t := time.Now()
		if _, err := conn.Write(b); err != nil {
			c.tb.Fatal(err)
		}
		if _, err := io.ReadFull(conn, b); err != nil {
			c.tb.Fatal(err)
		}
		ds = append(ds, time.Since(t))
	}
	return Percentile(ds, 50)
}

// Percentile returns the p-th percentile (0..100) of ds; it sorts ds.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := (len(ds) - 1) * p / 100
	return ds[i]
}

// Faults decides which members can talk and how slowly. Partitions are
// symmetric; cutting a pair closes the connections between them at once and
// refuses new ones until Heal.
type Faults struct {
	mu      sync.Mutex
	cut     map[[2]identity.PublicKey]bool
	delay   time.Duration
	conns   map[*faultConn]struct{}
	dropped int
}

// NewFaults returns a controller with every pair connected and no delay.
func NewFaults() *Faults {
	return &Faults{cut: map[[2]identity.PublicKey]bool{}, conns: map[*faultConn]struct{}{}}
}

func pair(a, b identity.PublicKey) [2]identity.PublicKey {
	if bytes.Compare(a.Bytes(), b.Bytes()) > 0 {
		a, b = b, a
	}
	return [2]identity.PublicKey{a, b}
}

// SetDelay delays every write by d on connections made from now on (one
// way; both ends delay their own writes, so a round trip costs 2d).
func (f *Faults) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Partition splits the members into sides that cannot reach each other;
// members not listed keep talking to everyone.
func (f *Faults) Partition(sides ...[]identity.PublicKey) {
	f.mu.Lock()
	for i, s := range sides {
		for _, o := range sides[i+1:] {
			for _, a := range s {
				for _, b := range o {
					f.cut[pair(a, b)] = true
				}
			}
		}
	}
	var kill []*faultConn
	for c := range f.conns {
		if f.cut[pair(c.local, c.remote)] {
			kill = append(kill, c)
		}
	}
	f.dropped += len(kill)
	f.mu.Unlock()
	for _, c := range kill {
		_ = c.Close()
	}
}

// DropAll closes every open connection, as a network blip would; members
// reconnect at once.
func (f *Faults) DropAll() {
	f.mu.Lock()
	kill := make([]*faultConn, 0, len(f.conns))
	for c := range f.conns {
		kill = append(kill, c)
	}
	f.dropped += len(kill)
	f.mu.Unlock()
	for _, c := range kill {
		_ = c.Close()
	}
}

// Heal reconnects every pair.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]identity.PublicKey]bool{}
}

// Dropped is how many connections partitions and DropAll have closed.
func (f *Faults) Dropped() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}

func (f *Faults) blocked(a, b identity.PublicKey) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[pair(a, b)]
}

// errCut is what reads, writes and dials across a partition return.
var errCut = &net.OpError{Op: "faults", Net: "treaty", Err: fmt.Errorf("rafttest: partitioned")}

// Wrap returns self's view of n through f.
func (f *Faults) Wrap(self identity.PublicKey, n consensus.Network) consensus.Network {
	return &faultNet{f: f, self: self, inner: n, ln: &faultListener{f: f, self: self, inner: n}}
}

type faultNet struct {
	f     *Faults
	self  identity.PublicKey
	inner consensus.Network
	ln    *faultListener
}

func (n *faultNet) Dial(ctx context.Context, member identity.PublicKey) (net.Conn, error) {
	if n.f.blocked(n.self, member) {
		return nil, errCut
	}
	c, err := n.inner.Dial(ctx, member)
	if err != nil {
		return nil, err
	}
	return n.f.track(c, n.self, member)
}

func (n *faultNet) Listener() net.Listener { return n.ln }

func (n *faultNet) Peer(c net.Conn) (identity.PublicKey, bool) {
	if fc, ok := c.(*faultConn); ok {
		return fc.remote, true
	}
	return n.inner.Peer(c)
}

type faultListener struct {
	f     *Faults
	self  identity.PublicKey
	inner consensus.Network
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.inner.Listener().Accept()
		if err != nil {
			return nil, err
		}
		peer, ok := l.inner.Peer(c)
		if !ok || l.f.blocked(l.self, peer) {
			_ = c.Close()
			continue
		}
		fc, err := l.f.track(c, l.self, peer)
		if err != nil {
			continue
		}
		return fc, nil
	}
}

func (l *faultListener) Close() error   { return l.inner.Listener().Close() }
func (l *faultListener) Addr() net.Addr { return l.inner.Listener().Addr() }

func (f *Faults) track(c net.Conn, local, remote identity.PublicKey) (*faultConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut[pair(local, remote)] {
		_ = c.Close()
		return nil, errCut
	}
	fc := &faultConn{Conn: c, f: f, local: local, remote: remote, closed: make(chan struct{})}
	if f.delay > 0 {
		fc.delay = f.delay
		fc.q = make(chan chunk, 4096)
		go fc.deliver()
	}
	f.conns[fc] = struct{}{}
	return fc, nil
}

type chunk struct {
	at time.Time
	b  []byte
}

// faultConn is a connection that fails once its pair is cut and, with a
// delay, delivers each write that much later without blocking the writer.
type faultConn struct {
	net.Conn
	f             *Faults
	local, remote identity.PublicKey

	delay  time.Duration
	q      chan chunk
	once   sync.Once
	closed chan struct{}
	werr   error
	wmu    sync.Mutex
}

func (c *faultConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.f.blocked(c.local, c.remote) {
		_ = c.Close()
		return 0, errCut
	}
	return n, err
}

func (c *faultConn) Write(p []byte) (int, error) {
	if c.f.blocked(c.local, c.remote) {
		_ = c.Close()
		return 0, errCut
	}
	if c.q == nil {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	err := c.werr
	c.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case c.q <- chunk{at: time.Now().Add(c.delay), b: append([]byte{}, p...)}:
		return len(p), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

// deliver writes queued chunks when they are due.
func (c *faultConn) deliver() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case ch := <-c.q:
			if d := time.Until(ch.at); d > 0 {
				t.Reset(d)
				select {
				case <-t.C:
				case <-c.closed:
					return
				}
			}
			if _, err := c.Conn.Write(ch.b); err != nil {
				c.wmu.Lock()
				c.werr = err
				c.wmu.Unlock()
				_ = c.Close()
				return
			}
		case <-c.closed:
			return
		}
	}
}

func (c *faultConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
	return c.Conn.Close()
}
