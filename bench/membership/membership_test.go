// Package bench_membership measures gossip membership (internal/membership:
// memberlist inside pinned mutual TLS, signed records) against memberlist's
// own defaults (DefaultLANConfig over its plain UDP/TCP transport) in the same
// run, for clusters of 8, 16 and 32 nodes in one process on loopback:
//
//	go test ./bench/membership -run '^$' -bench . -benchtime 1x -timeout 30m
//
// MEMBERSHIP_BENCH_SIZES=8,16,32,64 changes the sizes. Each iteration starts a
// fresh cluster and reports, as custom metrics:
//
//   - converge_s: from the first join until every node knows every other node
//     as up (treaty: holds its current signed record, alive or suspect;
//     memberlist: has had NotifyJoin for it, which suspicion does not undo);
//   - detect_s: from killing one node until every other node marks it dead;
//   - spread_s: from one node publishing a statement (memberlist: a user
//     broadcast) until every live node has accepted it;
//   - converge_cpu_s: CPU seconds the whole process used during convergence
//     (both implementations run in this process, so it is comparable even
//     when the machine is loaded and wall times are not);
//   - gossip_B/node/s: gossip bytes sent per node per second while idle after
//     convergence and 2 s of settling (treaty: frames and streams inside TLS, without TLS
//     overhead; memberlist: UDP payloads and TCP stream bytes).
package bench_membership

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Idle traffic is measured for idleWindow, settle after convergence.
const (
	settle     = 2 * time.Second
	idleWindow = 3 * time.Second
)

// scenarioTimeout bounds each phase; a phase that takes longer fails the run.
const scenarioTimeout = 60 * time.Second

func sizes(b *testing.B) []int {
	s := os.Getenv("MEMBERSHIP_BENCH_SIZES")
	if s == "" {
		return []int{8, 16, 32}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 || n > 256 {
			b.Fatalf("MEMBERSHIP_BENCH_SIZES: bad size %q", f)
		}
		out = append(out, n)
	}
	return out
}

// cluster is what a scenario needs from either implementation.
type cluster interface {
	join() error              // every node joins node 0
	converged() bool          // every node knows every other node alive
	kill(i int)               // stop node i without a goodbye
	seesDead(i int) bool      // every other live node marks node i dead
	publish(from int) error   // spread one statement from node from
	spreadDone(skip int) bool // every live node but skip has it
	bytesOut() uint64         // gossip bytes sent so far, all nodes
	close()
}

func BenchmarkMembership(b *testing.B) {
	for _, n := range sizes(b) {
		for _, impl := range []struct {
			name string
			mk   func(b *testing.B, n int) cluster
		}{
			{"treaty", newTreaty},
			{"memberlist-lan", newPlain},
		} {
			b.Run(fmt.Sprintf("impl=%s/n=%d", impl.name, n), func(b *testing.B) {
				var conv, cpu, det, spread, bps float64
				for range b.N {
					c := impl.mk(b, n)
					r := run(b, c, n)
					c.close()
					conv += r.converge.Seconds()
					cpu += r.convergeCPU.Seconds()
					det += r.detect.Seconds()
					spread += r.spread.Seconds()
					bps += r.bytesPerNodeSec
				}
				k := float64(b.N)
				b.ReportMetric(conv/k, "converge_s")
				b.ReportMetric(cpu/k, "converge_cpu_s")
				b.ReportMetric(det/k, "detect_s")
				b.ReportMetric(spread/k, "spread_s")
				b.ReportMetric(bps/k, "gossip_B/node/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

type result struct {
	converge, convergeCPU time.Duration
	detect, spread        time.Duration
	bytesPerNodeSec       float64
}

func waitFor(b *testing.B, what string, cond func() bool) time.Duration {
	start := time.Now()
	for !cond() {
		if time.Since(start) > scenarioTimeout {
			b.Fatalf("%s: not within %s", what, scenarioTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	return time.Since(start)
}

func run(b *testing.B, c cluster, n int) result {
	var r result
	start, cpu0 := time.Now(), cpuTime()
	if err := c.join(); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "converge", c.converged)
	r.converge, r.convergeCPU = time.Since(start), cpuTime()-cpu0

	time.Sleep(settle) // let the join's broadcasts finish their retransmissions
	before := c.bytesOut()
	time.Sleep(idleWindow) // the measurement window itself
	r.bytesPerNodeSec = float64(c.bytesOut()-before) / float64(n) / idleWindow.Seconds()

	pubStart := time.Now()
	if err := c.publish(1); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "spread", func() bool { return c.spreadDone(-1) })
	r.spread = time.Since(pubStart)

	victim := n - 1
	c.kill(victim)
	r.detect = waitFor(b, "detect", func() bool { return c.seesDead(victim) })
	return r
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- treaty: internal/membership over internal/transport ----

type admitAll struct{}

func (admitAll) Admitted(identity.PublicKey) bool { return true }

type treatyCluster struct {
	b        *testing.B
	keys     []identity.PrivateKey
	pubs     []identity.PublicKey
	trs      []*transport.Transport
	ms       []*membership.Membership
	dead     []bool
	accepted []atomic.Bool
}

func newTreaty(b *testing.B, n int) cluster {
	c := &treatyCluster{b: b, dead: make([]bool, n), accepted: make([]atomic.Bool, n)}
	quiet := slog.New(slog.DiscardHandler)
	for i := range n {
		k, err := identity.FromSeed(bytes.Repeat([]byte{byte(i + 1), 0x42}, 16))
		if err != nil {
			b.Fatal(err)
		}
		tr, err := transport.New(transport.Config{Identity: k, Peers: admitAll{}, Listen: "127.0.0.1:0",
			Logger: quiet, MaxConns: 1024, MaxPendingHandshakes: 512, MaxPendingPerSource: 512,
			// n nodes in one process: a goroutine can wait longer than the
			// 500ms default to send its ClientHello.
			ClientHelloTimeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		tr.Listener(membership.Proto)
		if err := tr.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		m, err := membership.New(context.Background(), membership.Config{
			Self: k, Transport: tr, Record: membership.Fields{Nickname: fmt.Sprint("n", i), Org: "bench"},
			Log: quiet,
			Kinds: map[string]membership.Kind{"bench.revoke": {
				Validate: func(membership.Statement) error { return nil },
				Accept:   func(membership.Statement) { c.accepted[i].Store(true) },
			}},
		})
		if err != nil {
			b.Fatal(err)
		}
		c.keys, c.pubs = append(c.keys, k), append(c.pubs, k.Public())
		c.trs, c.ms = append(c.trs, tr), append(c.ms, m)
	}
	return c
}

func (c *treatyCluster) join() error {
	seed := membership.Seed{Key: c.pubs[0], Addr: c.trs[0].Addr().String()}
	var wg sync.WaitGroup
	errs := make(chan error, len(c.ms))
	for i := 1; i < len(c.ms); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			for range 5 { // a join can time out while n handshakes start at once
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err = c.ms[i].Join(ctx, []membership.Seed{seed})
				cancel()
				if err == nil {
					return
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (c *treatyCluster) converged() bool {
	for i, m := range c.ms {
		for j := range c.ms {
			if i == j {
				continue
			}
			mem, ok := m.Member(c.pubs[j])
			up := mem.State == membership.StateAlive || mem.State == membership.StateSuspect
			if !ok || !up || mem.Record.Seq < c.ms[j].Self().Seq {
				return false
			}
		}
	}
	return true
}

func (c *treatyCluster) kill(i int) {
	c.dead[i] = true
	_ = c.ms[i].Close()
	_ = c.trs[i].Close()
}

func (c *treatyCluster) seesDead(v int) bool {
	for i, m := range c.ms {
		if c.dead[i] {
			continue
		}
		if mem, ok := m.Member(c.pubs[v]); !ok || mem.State != membership.StateDead {
			return false
		}
	}
	return true
}

func (c *treatyCluster) publish(from int) error {
	s, err := membership.SignStatement(c.keys[from], "bench.revoke", []byte("revoke "+c.pubs[0].String()))
	if err != nil {
		return err
	}
	return c.ms[from].Publish(context.Background(), s)
}

func (c *treatyCluster) spreadDone(int) bool {
	for i := range c.ms {
		if !c.dead[i] && !c.accepted[i].Load() {
			return false
		}
	}
	return true
}

func (c *treatyCluster) bytesOut() uint64 {
	var t uint64
	for i, m := range c.ms {
		if !c.dead[i] {
			t += m.Stats().BytesOut
		}
	}
	return t
}

func (c *treatyCluster) close() {
	for i := range c.ms {
		if !c.dead[i] {
			c.kill(i)
		}
	}
}

// ---- baseline: memberlist DefaultLANConfig over its own UDP/TCP transport ----

type plainCluster struct {
	b    *testing.B
	ms   []*memberlist.Memberlist
	ds   []*plainDelegate
	dead []bool
	sent atomic.Uint64
}

// plainDelegate tracks joins, deaths and one user broadcast for one node.
type plainDelegate struct {
	mu     sync.Mutex
	alive  map[string]bool
	dead   map[string]bool
	got    atomic.Bool
	queue  *memberlist.TransmitLimitedQueue
	notify func()
}

func (d *plainDelegate) NodeMeta(int) []byte { return nil }
func (d *plainDelegate) NotifyMsg(b []byte) {
	if len(b) > 0 && !d.got.Swap(true) {
		d.queue.QueueBroadcast(userBroadcast(bytes.Clone(b)))
	}
}
func (d *plainDelegate) GetBroadcasts(o, l int) [][]byte { return d.queue.GetBroadcasts(o, l) }

// LocalState and MergeRemoteState carry the broadcast in push-pull too, as
// treaty keeps statements for push-pull, so lost UDP packets get repaired.
func (d *plainDelegate) LocalState(bool) []byte {
	if d.got.Load() {
		return []byte{'r'}
	}
	return nil
}

func (d *plainDelegate) MergeRemoteState(b []byte, _ bool) {
	if len(b) > 0 {
		d.got.Store(true)
	}
}

func (d *plainDelegate) NotifyJoin(n *memberlist.Node) {
	d.mu.Lock()
	d.alive[n.Name], d.dead[n.Name] = true, false
	d.mu.Unlock()
}
func (d *plainDelegate) NotifyLeave(n *memberlist.Node) {
	d.mu.Lock()
	d.alive[n.Name], d.dead[n.Name] = false, true
	d.mu.Unlock()
}
func (d *plainDelegate) NotifyUpdate(*memberlist.Node) {}

type userBroadcast []byte

func (u userBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (u userBroadcast) Message() []byte                       { return u }
func (u userBroadcast) Finished()                             {}

// countingTransport counts what memberlist's NetTransport sends.
type countingTransport struct {
	*memberlist.NetTransport
	sent *atomic.Uint64
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, d)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, sent: t.sent}, nil
}

type countingConn struct {
	net.Conn
	sent *atomic.Uint64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent.Add(uint64(n))
	return n, err
}

func newPlain(b *testing.B, n int) cluster {
	c := &plainCluster{b: b, dead: make([]bool, n)}
	for i := range n {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: log.New(io.Discard, "", 0)})
		if err != nil {
			b.Fatal(err)
		}
		mc := memberlist.DefaultLANConfig()
		mc.Name = fmt.Sprint("node-", i)
		mc.Transport = &countingTransport{NetTransport: nt, sent: &c.sent}
		mc.AdvertiseAddr = "127.0.0.1"
		mc.AdvertisePort = nt.GetAutoBindPort()
		mc.BindAddr = "127.0.0.1"
		mc.Logger = log.New(io.Discard, "", 0)
		d := &plainDelegate{alive: map[string]bool{}, dead: map[string]bool{}}
		mc.Delegate, mc.Events = d, d
		ml, err := memberlist.Create(mc)
		if err != nil {
			b.Fatal(err)
		}
		d.queue = &memberlist.TransmitLimitedQueue{NumNodes: ml.NumMembers, RetransmitMult: mc.RetransmitMult}
		c.ms, c.ds = append(c.ms, ml), append(c.ds, d)
	}
	return c
}

func (c *plainCluster) join() error {
	addr := c.ms[0].LocalNode().Address()
	var wg sync.WaitGroup
	errs := make(chan error, len(c.ms))
	for i := 1; i < len(c.ms); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.ms[i].Join([]string{addr}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (c *plainCluster) converged() bool {
	n := len(c.ms)
	for _, d := range c.ds {
		d.mu.Lock()
		alive := 0
		for _, a := range d.alive {
			if a {
				alive++
			}
		}
		d.mu.Unlock()
		if alive < n { // NotifyJoin includes the node itself
			return false
		}
	}
	return true
}

func (c *plainCluster) kill(i int) {
	c.dead[i] = true
	_ = c.ms[i].Shutdown()
}

func (c *plainCluster) seesDead(v int) bool {
	name := fmt.Sprint("node-", v)
	for i, d := range c.ds {
		if c.dead[i] {
			continue
		}
		d.mu.Lock()
		ok := d.dead[name]
		d.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func (c *plainCluster) publish(from int) error {
	d := c.ds[from]
	d.got.Store(true)
	d.queue.QueueBroadcast(userBroadcast(bytes.Repeat([]byte{'r'}, 104))) // a statement's size
	return nil
}

func (c *plainCluster) spreadDone(int) bool {
	for i, d := range c.ds {
		if !c.dead[i] && !d.got.Load() {
			return false
		}
	}
	return true
}

func (c *plainCluster) bytesOut() uint64 { return c.sent.Load() }

func (c *plainCluster) close() {
	for i := range c.ms {
		if !c.dead[i] {
			c.kill(i)
		}
	}
}
