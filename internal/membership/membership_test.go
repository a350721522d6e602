package membership

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestSmallClusterConverges(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.joinAll()
	d := eventually(t, 20*time.Second, "4 nodes converge", func() bool { return c.converged(seq(4)) })
	t.Logf("converged in %s", d)
	for _, mem := range c.ms[3].Members() {
		if mem.Record.Nickname != "node" || mem.Record.Org != "org" {
			t.Fatalf("record fields lost: %+v", mem.Record)
		}
	}
}

// Issue 14: 32 nodes on the in-process harness converge (every member knows
// every other's current record). Under the race detector 16: 32 race-
// instrumented nodes in one process need ~500 handshakes at 5-20x the CPU,
// more than a loaded 2-core machine gives them in minutes; the 32-node run is
// the one without -race (and bench/membership).
func TestClusterConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	n := 32
	if raceEnabled {
		n = 16
	}
	c := newCluster(t, n, nil)
	start := time.Now()
	c.joinAll()
	t.Logf("joins returned after %s", time.Since(start))
	defer func() {
		if t.Failed() {
			c.report(t)
		}
	}()
	eventually(t, 60*time.Second, "cluster converges", func() bool { return c.converged(seq(n)) })
	t.Logf("%d nodes converged %s after the first join", n, time.Since(start))
	// Every record travelled intact and verified.
	for _, mem := range c.ms[n-1].Members() {
		if err := mem.Record.Verify(time.Now()); err != nil {
			t.Fatalf("member record does not verify: %v", err)
		}
	}
}

// Issue 14: a killed node is detected as dead by every other member.
func TestKilledNodeDetectedDead(t *testing.T) {
	const n = 8
	c := newCluster(t, n, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(n)) })
	victim := c.pubs[5]
	c.kill(5)
	d := eventually(t, 30*time.Second, "every member sees the killed node dead", func() bool {
		for i := range n {
			if i == 5 {
				continue
			}
			if mem, ok := c.ms[i].Member(victim); !ok || mem.State != StateDead {
				return false
			}
		}
		return true
	})
	t.Logf("failure detected everywhere after %s", d)
}

// Issue 14: a partition heals. The fault hook cuts all gossip between two
// halves; each half declares the other dead; after healing, every member is
// alive again everywhere.
func TestPartitionHeals(t *testing.T) {
	const n = 8
	c := newCluster(t, n, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(n)) })

	side := map[identity.PublicKey]int{}
	for i, k := range c.keys {
		side[k.Public()] = 1 + i%2
	}
	c.part.set(side)
	eventually(t, 60*time.Second, "each half sees the other dead", func() bool {
		for i := range n {
			for j := range n {
				if i%2 == j%2 {
					continue
				}
				if mem, ok := c.ms[i].Member(c.pubs[j]); !ok || mem.State != StateDead {
					return false
				}
			}
		}
		return true
	})
	c.part.set(nil)
	d := eventually(t, 60*time.Second, "partition heals", func() bool { return c.converged(seq(n)) })
	t.Logf("healed %s after the partition ended", d)
}

// Addresses follow the peer: a node that leaves and comes back on another
// port is known at its new address, with its new record, everywhere.
func TestAddressChangeSpreads(t *testing.T) {
	const n = 5
	c := newCluster(t, n, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(n)) })
	oldAddr := c.trs[4].Addr().String()
	if err := c.ms[4].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.kill(4)
	c.start(4, "127.0.0.1:0")
	newAddr := c.trs[4].Addr().String()
	if newAddr == oldAddr {
		t.Fatal("same port again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ms[4].Join(ctx, []Seed{c.seed(0)}); err != nil {
		t.Fatal(err)
	}
	key := c.pubs[4]
	d := eventually(t, 30*time.Second, "new address everywhere", func() bool {
		for i := range n - 1 {
			mem, ok := c.ms[i].Member(key)
			if !ok || mem.State != StateAlive || !slices.Contains(mem.Record.Addrs, newAddr) || slices.Contains(mem.Record.Addrs, oldAddr) {
				return false
			}
		}
		return true
	})
	t.Logf("new address known everywhere after %s", d)

	// An Update in place spreads too.
	f := c.ms[4].Self().Fields
	f.Addrs = append(slices.Clone(f.Addrs), "laptop.example:7420")
	if err := c.ms[4].Update(ctx, f); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "updated record everywhere", func() bool {
		for i := range n - 1 {
			mem, ok := c.ms[i].Member(key)
			if !ok || !slices.Contains(mem.Record.Addrs, "laptop.example:7420") {
				return false
			}
		}
		return true
	})
}

// encodeAlive builds a memberlist alive packet, as a member could forge one.
func encodeAlive(t *testing.T, inc uint32, name, addr string, meta []byte) []byte {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	var buf bytes.Buffer
	buf.WriteByte(mlAlive)
	var h codec.MsgpackHandle
	a := mlAliveMsg{Incarnation: inc, Node: name, Addr: net.ParseIP(host).To4(), Port: uint16(p), Meta: meta,
		Vsn: []uint8{1, 5, 2, 0, 0, 0}}
	if err := codec.NewEncoder(&buf, &h).Encode(&a); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Issue 14: a forged or replayed record is rejected, and the evidence names
// the member that relayed it (the TLS peer), not the key the record claims.
func TestForgedAndReplayedRecordsAreChargedToTheRelayer(t *testing.T) {
	const attacker, victim, observer = 0, 1, 2
	c := newCluster(t, 3, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(3)) })

	vKey := c.pubs[victim]
	vAddr := c.trs[victim].Addr().String()
	old := c.ms[victim].Self()
	oldMeta, _ := old.Marshal()
	f := old.Fields
	f.Nickname = "victim-v2"
	if err := c.ms[victim].Update(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	newSeq := c.ms[victim].Self().Seq
	eventually(t, 30*time.Second, "observer has the new record", func() bool {
		return knows(c.ms[observer], vKey, newSeq, StateAlive)
	})
	for len(c.ev) > 0 {
		<-c.ev // anything before the attack is not under test
	}

	forged := old
	forged.Nickname = "mallory"
	forged.Addrs = []string{c.trs[attacker].Addr().String()}
	forgedMeta := append(forged.body(nil), old.Sig...)

	own := c.ms[attacker].Self()
	ownMeta, _ := own.Marshal()

	expired := Record{Fields: own.Fields, Seq: own.Seq + 1, Expires: time.Now().Add(-time.Minute).Truncate(time.Second)}
	if err := SignRecord(c.keys[attacker], &expired); err != nil {
		t.Fatal(err)
	}
	expiredMeta, _ := expired.Marshal()

	aName := c.pubs[attacker].String()
	cases := []struct {
		name    string
		pkt     []byte
		reason  Reason
		subject identity.PublicKey
	}{
		{"forged signature", encodeAlive(t, 1000, vKey.String(), vAddr, forgedMeta), ReasonBadSignature, vKey},
		{"replayed old record at a higher incarnation", encodeAlive(t, 1000, vKey.String(), vAddr, oldMeta), ReasonReplayed, vKey},
		{"own record gossiped as another key", encodeAlive(t, 1000, vKey.String(), c.trs[attacker].Addr().String(), ownMeta), ReasonWrongKey, c.pubs[attacker]},
		{"expired record", encodeAlive(t, 1000, aName, c.trs[attacker].Addr().String(), expiredMeta), ReasonExpired, c.pubs[attacker]},
		{"forged record inside a compound packet", compound(encodeAlive(t, 1001, vKey.String(), vAddr, forgedMeta)), ReasonBadSignature, vKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ms[attacker].net.WriteToAddress(tc.pkt, memberlist.Address{
				Addr: c.trs[observer].Addr().String(), Name: c.pubs[observer].String()})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case e := <-c.ev:
				if !e.Relayer.Equal(c.pubs[attacker]) {
					t.Fatalf("evidence against %s, want the relayer %s", e.Relayer.Short(), c.pubs[attacker].Short())
				}
				if e.Reason != tc.reason || !e.Subject.Equal(tc.subject) {
					t.Fatalf("evidence %s about %s, want %s about %s (%v)", e.Reason, e.Subject.Short(), tc.reason, tc.subject.Short(), e.Err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no evidence")
			}
		})
	}
	// The observer still holds the victim's real, current record.
	mem, _ := c.ms[observer].Member(vKey)
	if mem.Record.Nickname != "victim-v2" || mem.Record.Seq != newSeq || !slices.Contains(mem.Record.Addrs, vAddr) {
		t.Fatalf("observer's record of the victim changed: %+v", mem.Record)
	}
}

func compound(msgs ...[]byte) []byte {
	b := []byte{mlCompound, byte(len(msgs))}
	for _, m := range msgs {
		b = append(b, byte(len(m)>>8), byte(len(m)))
	}
	for _, m := range msgs {
		b = append(b, m...)
	}
	return b
}

// Statements spread to every member; a statement whose envelope or
// validator fails is dropped and charged to the relayer.
func TestStatementsSpreadAndBadOnesAreCharged(t *testing.T) {
	const n = 8
	var accepted atomic.Int32
	kinds := map[string]Kind{"test.revoke": {
		Validate: func(s Statement) error {
			if bytes.HasPrefix(s.Body, []byte("bad")) {
				return errors.New("body says bad")
			}
			return nil
		},
		Accept: func(Statement) { accepted.Add(1) },
	}}
	c := newCluster(t, n, kinds)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(n)) })

	s, err := SignStatement(c.keys[3], "test.revoke", []byte("revoke z6Mk..."))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ms[3].Publish(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	d := eventually(t, 30*time.Second, "statement everywhere", func() bool { return accepted.Load() == n })
	t.Logf("statement accepted by all %d members after %s", n, d)
	// Publishing again is a no-op.
	if err := c.ms[5].Publish(context.Background(), s); err != nil || accepted.Load() != n {
		t.Fatalf("republish: %v, accepted %d", err, accepted.Load())
	}
	if err := c.ms[3].Publish(context.Background(), mustSign(t, c.keys[3], "test.revoke", "bad one")); err == nil {
		t.Fatal("Publish accepted a statement its validator refuses")
	}

	for len(c.ev) > 0 {
		<-c.ev
	}
	bad := mustSign(t, c.keys[3], "test.revoke", "revoke something")
	bad.Body = []byte("revoke something else")
	badEnc := append(bad.body(nil), bad.Sig...)
	rejected := mustSign(t, c.keys[3], "test.revoke", "bad, by its validator")
	rejEnc, _ := rejected.Marshal()
	for _, tc := range []struct {
		pkt    []byte
		reason Reason
	}{
		{append([]byte{mlUser}, badEnc...), ReasonBadSignature},
		{append([]byte{mlUser}, rejEnc...), ReasonRejected},
	} {
		if _, err := c.ms[0].net.WriteToAddress(tc.pkt, memberlist.Address{
			Addr: c.trs[1].Addr().String(), Name: c.pubs[1].String()}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-c.ev:
			if !e.Relayer.Equal(c.pubs[0]) || e.Reason != tc.reason {
				t.Fatalf("evidence %s against %s, want %s against the relayer", e.Reason, e.Relayer.Short(), tc.reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no evidence")
		}
	}
	if accepted.Load() != n {
		t.Fatalf("a bad statement was accepted: %d", accepted.Load())
	}
}

func mustSign(t *testing.T, k identity.PrivateKey, kind, body string) Statement {
	t.Helper()
	s, err := SignStatement(k, kind, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A stranger (a key the transport does not admit) cannot gossip at all.
func TestStrangerCannotJoin(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.joinAll()
	stranger := newClusterFrom(t, 1000, 1, nil) // its own PeerSource; c's nodes do not admit it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stranger.ms[0].Join(ctx, []Seed{c.seed(0)}); err == nil {
		t.Fatal("a key the transport does not admit joined")
	}
	if _, ok := c.ms[0].Member(stranger.keys[0].Public()); ok {
		t.Fatal("stranger learned")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	c := newCluster(t, 1, nil)
	base := Config{Self: c.keys[0], Transport: c.trs[0]}
	for name, mut := range map[string]func(*Config){
		"no self":        func(cfg *Config) { cfg.Self = identity.PrivateKey{} },
		"wrong self":     func(cfg *Config) { cfg.Self = testKey(t, 99) },
		"ttl":            func(cfg *Config) { cfg.RecordTTL = time.Second },
		"nickname":       func(cfg *Config) { cfg.Record.Nickname = "a\u202eb" },
		"kind name":      func(cfg *Config) { cfg.Kinds = map[string]Kind{"A": {Validate: func(Statement) error { return nil }}} },
		"kind validator": func(cfg *Config) { cfg.Kinds = map[string]Kind{"a": {}} },
		"seed key":       func(cfg *Config) { cfg.Seeds = []Seed{{Addr: "127.0.0.1:1"}} },
		"probe timeout":  func(cfg *Config) { cfg.Timings.ProbeTimeout = time.Hour },
		"advertise":      func(cfg *Config) { cfg.Advertise = "0.0.0.0:1" },
		"max statements": func(cfg *Config) { cfg.MaxStatements = -1 },
	} {
		cfg := base
		mut(&cfg)
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A forged record inside a push-pull stream fails the whole exchange and is
// charged to the peer at the other end of the stream.
func TestForgedRecordInPushPullIsChargedToTheStreamPeer(t *testing.T) {
	const attacker, victim, observer = 0, 1, 2
	c := newCluster(t, 3, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(3)) })
	for len(c.ev) > 0 {
		<-c.ev
	}
	v := c.ms[victim].Self()
	forged := v
	forged.Nickname = "mallory"
	meta := append(forged.body(nil), v.Sig...)
	host, port, _ := net.SplitHostPort(c.trs[victim].Addr().String())
	p, _ := strconv.Atoi(port)

	var buf bytes.Buffer
	buf.WriteByte(mlPushPull)
	var h codec.MsgpackHandle
	enc := codec.NewEncoder(&buf, &h)
	if err := enc.Encode(&mlPushPullHeader{Nodes: 1}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(&mlPushNodeState{Name: c.pubs[victim].String(), Addr: net.ParseIP(host).To4(), Port: uint16(p),
		Meta: meta, Incarnation: 99, Vsn: []uint8{1, 5, 2, 0, 0, 0}}); err != nil {
		t.Fatal(err)
	}
	conn, err := c.ms[attacker].net.DialAddressTimeout(memberlist.Address{
		Addr: c.trs[observer].Addr().String(), Name: c.pubs[observer].String()}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-c.ev:
		if !e.Relayer.Equal(c.pubs[attacker]) || e.Reason != ReasonBadSignature || !e.Subject.Equal(c.pubs[victim]) {
			t.Fatalf("evidence %s against %s about %s", e.Reason, e.Relayer.Short(), e.Subject.Short())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no evidence")
	}
	if mem, _ := c.ms[observer].Member(c.pubs[victim]); mem.Record.Nickname == "mallory" {
		t.Fatal("forged record believed")
	}
}

// Refuse (for revocations) removes a key from Members everywhere it is
// called, and its later records are ignored without charging the relayers.
func TestRefusedKeyDisappearsAndStaysOut(t *testing.T) {
	const n = 4
	c := newCluster(t, n, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(n)) })
	for len(c.ev) > 0 {
		<-c.ev
	}
	revoked := c.pubs[3]
	for i := range n - 1 {
		c.ms[i].Refuse(revoked)
		if _, ok := c.ms[i].Member(revoked); ok {
			t.Fatalf("node %d still lists the refused key", i)
		}
	}
	// The refused node keeps gossiping a fresh record; nobody takes it back.
	f := c.ms[3].Self().Fields
	f.Nickname = "still-here"
	if err := c.ms[3].Update(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	// A negative property: watch for 3 s (dozens of gossip rounds, several
	// probes of the refused node) that it never comes back.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for i := range n - 1 {
			if _, ok := c.ms[i].Member(revoked); ok {
				t.Fatalf("node %d took the refused key back", i)
			}
			for _, mem := range c.ms[i].Members() {
				if mem.Record.Key.Equal(revoked) {
					t.Fatalf("node %d lists the refused key in Members", i)
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // observation window, not synchronisation
	}
	select {
	case e := <-c.ev:
		t.Fatalf("relayer charged for a refused key's record: %s against %s", e.Reason, e.Relayer.Short())
	default:
	}
}

// Issue 14: a member's state is this node's own view. With two members cut
// apart, no one else can report a suspicion: each must show the other suspect
// from its own failed probes before it declares it dead.
func TestOwnProbesMarkSuspect(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(2)) })
	c.part.set(map[identity.PublicKey]int{c.pubs[0]: 1, c.pubs[1]: 2})
	sawSuspect := false
	eventually(t, 60*time.Second, "node 0 declares node 1 dead", func() bool {
		mem, ok := c.ms[0].Member(c.pubs[1])
		if ok && mem.State == StateSuspect {
			sawSuspect = true
		}
		return ok && mem.State == StateDead
	})
	if !sawSuspect {
		t.Fatal("node 0 never showed node 1 suspect: its own failed probes were not in its view")
	}
	c.part.set(nil)
	eventually(t, 60*time.Second, "heals", func() bool { return c.converged(seq(2)) })
}

// A leave after Close is an error, not memberlist's "leave after shutdown"
// panic: a node's shutdown may race its goodbye.
func TestLeaveAfterCloseIsAnError(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.joinAll()
	if err := c.ms[1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.ms[1].Leave(time.Second); err == nil {
		t.Fatal("Leave after Close succeeded")
	}
}
