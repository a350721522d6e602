package membership

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/transport"
)

// testKey derives a deterministic identity from a number.
func testKey(tb testing.TB, n int) identity.PrivateKey {
	tb.Helper()
	seed := bytes.Repeat([]byte{byte(n), byte(n >> 8), 0x5a}, 11)[:32]
	k, err := identity.FromSeed(seed)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// keySet is a PeerSource the test can change.
type keySet struct {
	mu sync.Mutex
	m  map[identity.PublicKey]bool
}

func (s *keySet) Admitted(k identity.PublicKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *keySet) add(k identity.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = true
}

// partition is a fault hook shared by a cluster: while active, traffic
// between the two sides vanishes.
type partition struct {
	mu   sync.Mutex
	side map[identity.PublicKey]int // 0: no partition
}

func (p *partition) cut(a, b identity.PublicKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	sa, sb := p.side[a], p.side[b]
	return sa != 0 && sb != 0 && sa != sb
}

func (p *partition) set(side map[identity.PublicKey]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.side = side
}

// cluster is n nodes with real transports on loopback, each admitting every
// key of the cluster.
type cluster struct {
	tb      testing.TB
	keys    []identity.PrivateKey
	pubs    []identity.PublicKey // keys[i].Public(), cached: deriving it costs a base58 encoding
	trs     []*transport.Transport
	ms      []*Membership
	peers   *keySet
	part    *partition
	ev      chan Evidence
	evCount atomic.Int64
	debug   io.Writer // node 5 logs here at debug level when set
	tim     Timings
	kinds   map[string]Kind
}

// testTimings are the defaults, slowed down under the race detector, which
// makes every handshake 5-20x slower on a shared 2-core machine.
func testTimings() Timings {
	t := DefaultTimings()
	if raceEnabled {
		t.ProbeInterval = time.Second
		t.ProbeTimeout = 500 * time.Millisecond
		t.SuspicionMult = 4
		t.GossipInterval = 100 * time.Millisecond
		t.StreamTimeout = 20 * time.Second
	}
	return t
}

func newCluster(tb testing.TB, n int, kinds map[string]Kind) *cluster {
	tb.Helper()
	return newClusterFrom(tb, 1, n, kinds)
}

func newClusterDbg(tb testing.TB, n int, w io.Writer) *cluster {
	c := &cluster{tb: tb, peers: &keySet{m: map[identity.PublicKey]bool{}}, part: &partition{},
		ev: make(chan Evidence, 1024), tim: testTimings(), debug: w}
	for i := range n {
		c.keys = append(c.keys, testKey(tb, 1+i))
		c.pubs = append(c.pubs, c.keys[i].Public())
		c.peers.add(c.pubs[i])
	}
	for i := range n {
		c.start(i, "127.0.0.1:0")
	}
	return c
}

// newClusterFrom makes a cluster whose keys are testKey(base), testKey(base+1)...
func newClusterFrom(tb testing.TB, base, n int, kinds map[string]Kind) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, peers: &keySet{m: map[identity.PublicKey]bool{}}, part: &partition{},
		ev: make(chan Evidence, 1024), tim: testTimings(), kinds: kinds}
	for i := range n {
		c.keys = append(c.keys, testKey(tb, base+i))
		c.pubs = append(c.pubs, c.keys[i].Public())
		c.peers.add(c.pubs[i])
	}
	for i := range n {
		c.start(i, "127.0.0.1:0")
	}
	return c
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start (re)starts node i on listen.
func (c *cluster) start(i int, listen string) {
	tb := c.tb
	tb.Helper()
	tr, err := transport.New(transport.Config{Identity: c.keys[i], Peers: c.peers, Listen: listen,
		Logger: quietLog(), MaxConns: 512, MaxPendingHandshakes: 256, MaxPendingPerSource: 256,
		// Dozens of nodes in one process on 2 cores: a goroutine can wait
		// longer than the 500ms default to send its ClientHello.
		ClientHelloTimeout: 5 * time.Second, HandshakeTimeout: handshakeTimeout})
	if err != nil {
		tb.Fatal(err)
	}
	tr.Listener(Proto)
	if err := tr.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	self := c.pubs[i]
	lg := quietLog()
	if c.debug != nil && i == 5 {
		lg = slog.New(slog.NewTextHandler(c.debug, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := New(context.Background(), Config{
		Self: c.keys[i], Transport: tr,
		Record:  Fields{Nickname: "node", Org: "org"},
		Timings: c.tim,
		Kinds:   c.kinds,
		Log:     lg,
		OnEvidence: func(e Evidence) {
			c.evCount.Add(1)
			select {
			case c.ev <- e:
			default: // OnEvidence must not block
			}
		},
		Cut: func(p identity.PublicKey) bool { return c.part.cut(self, p) },
	})
	if err != nil {
		tb.Fatal(err)
	}
	if i < len(c.ms) {
		c.trs[i], c.ms[i] = tr, m
	} else {
		c.trs, c.ms = append(c.trs, tr), append(c.ms, m)
	}
	tb.Cleanup(func() {
		_ = m.Close()
		_ = tr.Close()
	})
}

// kill stops node i without a goodbye.
func (c *cluster) kill(i int) {
	_ = c.ms[i].Close()
	_ = c.trs[i].Close()
}

func (c *cluster) seed(i int) Seed {
	return Seed{Key: c.pubs[i], Addr: c.trs[i].Addr().String()}
}

// joinAll joins every node but 0 through node 0.
func (c *cluster) joinAll() {
	c.tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(c.ms))
	sem := make(chan struct{}, 4) // joins at a time: the seed handshakes each
	for i := 1; i < len(c.ms); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// A join is one handshake and a push-pull; when 31 start at
			// once on a loaded machine some time out, so retry like the
			// background seed joiner does.
			deadline := time.Now().Add(60 * time.Second)
			if raceEnabled {
				deadline = time.Now().Add(180 * time.Second)
			}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 2*c.tim.StreamTimeout)
				_, err := c.ms[i].Join(ctx, []Seed{c.seed(0)})
				cancel()
				if err == nil {
					return
				}
				if time.Now().After(deadline) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.tb.Fatal(err)
	}
}

// eventually polls cond every 20ms until it holds or d passes (3d under the
// race detector).
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	if raceEnabled {
		d *= 3 // every handshake is 5-20x slower; bounds are about progress, not speed
	}
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			tb.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// knows reports whether observer holds subject's record with seq >= seq in state st.
func knows(observer *Membership, subject identity.PublicKey, seq uint64, st State) bool {
	mem, ok := observer.Member(subject)
	return ok && mem.Record.Seq >= seq && mem.State == st
}

// converged reports whether every live node holds every other live node's
// current record and believes it up (alive, or suspect: under load a suspicion
// comes and is refuted within a probe or two, which is not a lack of knowledge).
func (c *cluster) converged(live []int) bool {
	for _, i := range live {
		for _, j := range live {
			if i == j {
				continue
			}
			mem, ok := c.ms[i].Member(c.pubs[j])
			if !ok || mem.Record.Seq < c.ms[j].Self().Seq || (mem.State != StateAlive && mem.State != StateSuspect) {
				return false
			}
		}
	}
	return true
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// report logs, per node, which members it lacks or holds in the wrong state.
func (c *cluster) report(tb testing.TB) {
	for i, m := range c.ms {
		var missing []string
		for j := range c.ms {
			if i == j {
				continue
			}
			mem, ok := m.Member(c.pubs[j])
			switch {
			case !ok:
				missing = append(missing, fmt.Sprintf("%d:unknown", j))
			case mem.State != StateAlive:
				missing = append(missing, fmt.Sprintf("%d:%s", j, mem.State))
			case mem.Record.Seq < c.ms[j].Self().Seq:
				missing = append(missing, fmt.Sprintf("%d:stale", j))
			}
		}
		if i == 0 {
			tb.Logf("evidence: %d", c.evCount.Load())
			for len(c.ev) > 0 {
				e := <-c.ev
				tb.Logf("  %s against %s about %s: %v", e.Reason, e.Relayer.Short(), e.Subject.Short(), e.Err)
				if len(c.ev) < 1000 {
					break
				}
			}
		}
		tb.Logf("node %d (ml members %d) lacks %v; stats %+v; transport refused %v", i, m.ml.NumMembers(), missing, m.Stats(), c.trs[i].Stats().ByReason)
	}
}
