package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestNewValidatesLimits(t *testing.T) {
	t.Parallel()
	good := func() Config { return Config{Identity: testKey(t, 1), Peers: admit()} }
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" means no error
	}{
		{"hello timeout low", func(c *Config) { c.ClientHelloTimeout = time.Millisecond }, "Config.ClientHelloTimeout"},
		{"hello timeout above handshake", func(c *Config) { c.ClientHelloTimeout = 6 * time.Second }, "Config.ClientHelloTimeout"},
		{"hello timeout edges", func(c *Config) { c.ClientHelloTimeout = 10 * time.Millisecond }, ""},
		{"hello timeout = handshake", func(c *Config) { c.HandshakeTimeout, c.ClientHelloTimeout = time.Second, time.Second }, ""},
		{"short handshake caps hello default", func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond }, ""},
		{"pending negative", func(c *Config) { c.MaxPendingHandshakes = -1 }, "Config.MaxPendingHandshakes"},
		{"pending high", func(c *Config) { c.MaxPendingHandshakes = 1<<16 + 1 }, "Config.MaxPendingHandshakes"},
		{"pending edges", func(c *Config) { c.MaxPendingHandshakes = 1 << 16 }, ""},
		{"per source above pending", func(c *Config) { c.MaxPendingHandshakes, c.MaxPendingPerSource = 8, 9 }, "Config.MaxPendingPerSource"},
		{"per source = pending", func(c *Config) { c.MaxPendingHandshakes, c.MaxPendingPerSource = 8, 8 }, ""},
		{"per source negative", func(c *Config) { c.MaxPendingPerSource = -1 }, "Config.MaxPendingPerSource"},
		{"reserved = pending", func(c *Config) { c.MaxPendingHandshakes, c.ReservedPending = 8, 8 }, "Config.ReservedPending"},
		{"reserved below pending", func(c *Config) { c.MaxPendingHandshakes, c.ReservedPending = 8, 7 }, ""},
		{"reserved negative", func(c *Config) { c.ReservedPending = -1 }, "Config.ReservedPending"},
		{"conns per peer high", func(c *Config) { c.MaxConnsPerPeer = 1025 }, "Config.MaxConnsPerPeer"},
		{"conns per peer edges", func(c *Config) { c.MaxConnsPerPeer = 1024 }, ""},
		{"conns negative", func(c *Config) { c.MaxConns = -1 }, "Config.MaxConns"},
		{"conns high", func(c *Config) { c.MaxConns = 1<<20 + 1 }, "Config.MaxConns"},
		{"idle low", func(c *Config) { c.IdleTimeout = time.Millisecond }, "Config.IdleTimeout"},
		{"idle high", func(c *Config) { c.IdleTimeout = 48 * time.Hour }, "Config.IdleTimeout"},
		{"idle edges", func(c *Config) { c.IdleTimeout = 100 * time.Millisecond }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.edit(&cfg)
			tr, err := New(cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				_ = tr.Close()
				return
			}
			if err == nil {
				_ = tr.Close()
				t.Fatal("New accepted a bad config")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

func TestDefaultsFromFileLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, pending, conns int }{
		{0, 384, 2016}, // unknown: as for 4096
		{256, 16, 16},
		{1024, 96, 504},
		{4096, 384, 2016},
		{20000, 512, 4096},
		{1 << 20, 512, 4096},
	} {
		p, c := fdBudget(tc.n)
		if p != tc.pending || c != tc.conns {
			t.Errorf("fdBudget(%d) = %d, %d; want %d, %d", tc.n, p, c, tc.pending, tc.conns)
		}
		if reserve := max(256, tc.n/4); tc.n >= 1024 && tc.n-p-c < reserve {
			t.Errorf("fdBudget(%d) leaves %d descriptors, less than the reserve %d", tc.n, tc.n-p-c, reserve)
		}
	}
	tr, err := New(Config{Identity: testKey(t, 1), Peers: admit()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p, c := fdBudget(openFileLimit())
	if got := tr.cfg; got.MaxPendingHandshakes != p || got.MaxConns != c || got.MaxPendingPerSource != min(16, p) ||
		got.ReservedPending != p/4 || got.MaxConnsPerPeer != 4 || got.ClientHelloTimeout != 500*time.Millisecond ||
		got.IdleTimeout != 5*time.Minute {
		t.Fatalf("defaults %+v", got)
	}
}

func TestAdmissionBoundaries(t *testing.T) {
	t.Parallel()
	pfx := func(s string) netip.Prefix { return source(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s))) }
	a, b, c, k := pfx("10.0.0.1:1"), pfx("10.0.0.2:1"), pfx("10.0.0.3:1"), pfx("10.0.0.9:1")
	now := t0
	adm := newAdmission(8, 2, 3) // 6 for strangers, 2 more for known sources, 3 per source
	enter := func(src netip.Prefix, known bool) Reason {
		r, err := adm.enter(src, known, now)
		if (r == 0) != (err == nil) {
			t.Fatalf("reason %v with error %v", r, err)
		}
		return r
	}
	for range 3 {
		if r := enter(a, false); r != 0 {
			t.Fatalf("a refused below its limit: %v", r)
		}
	}
	if r := enter(a, false); r != ReasonSourceLimit {
		t.Fatalf("4th from a: %v, want source limit", r)
	}
	adm.leave(a)
	if r := enter(a, false); r != 0 {
		t.Fatalf("a after a leave: %v", r)
	}
	for range 3 {
		if r := enter(b, false); r != 0 {
			t.Fatalf("b: %v", r)
		}
	}
	// 6 strangers pending: the stranger share is full ...
	if r := enter(c, false); r != ReasonOverload {
		t.Fatalf("7th stranger: %v, want overload", r)
	}
	// ... but a known source gets the reserved two, and no more.
	if r := enter(k, true); r != 0 {
		t.Fatalf("known 7th: %v", r)
	}
	if r := enter(k, true); r != 0 {
		t.Fatalf("known 8th: %v", r)
	}
	if r := enter(k, true); r != ReasonOverload {
		t.Fatalf("known 9th: %v, want overload", r)
	}
	adm.leave(k)
	adm.leave(k)
	// A source that completed an admitted handshake counts as known ...
	adm.remember(c, now)
	if r := enter(c, false); r != 0 {
		t.Fatalf("remembered source: %v", r)
	}
	adm.leave(c)
	// ... for 24h.
	now = now.Add(verifiedTTL)
	if r := enter(c, false); r != ReasonOverload {
		t.Fatalf("remembered source after its TTL: %v, want overload", r)
	}
	if adm.pending() != 6 {
		t.Fatalf("pending %d, want 6", adm.pending())
	}
	// IPv6 sources are /64 blocks; IPv4-mapped addresses are IPv4.
	if pfx("[2001:db8::1]:1") != pfx("[2001:db8::ffff:2]:1") || pfx("[2001:db8::1]:1") == pfx("[2001:db8:0:1::1]:1") {
		t.Fatal("IPv6 sources are not /64 blocks")
	}
	if pfx("[::ffff:10.0.0.1]:1") != a {
		t.Fatal("IPv4-mapped address is a different source")
	}
}

func TestAdmissionRememberIsBounded(t *testing.T) {
	t.Parallel()
	adm := newAdmission(8, 2, 3)
	for i := range verifiedAddrs + 10 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		adm.remember(netip.PrefixFrom(ip, 32), t0.Add(time.Duration(i)))
	}
	if n := len(adm.verified); n != verifiedAddrs {
		t.Fatalf("%d remembered sources, want %d", n, verifiedAddrs)
	}
	if _, ok := adm.verified[netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, 0}), 32)]; ok {
		t.Fatal("the oldest source was kept")
	}
}

// addrSet is an AddrSource.
type addrSet map[netip.Addr]bool

func (s addrSet) KnownAddr(a netip.Addr) bool { return s[a] }

// dialTLSFrom runs cli's client handshake with srv from the loopback address src.
func dialTLSFrom(t *testing.T, cli, srv *node, src string) (*tls.Conn, error) {
	t.Helper()
	raw := dialFrom(t, src, srv.addr())
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, cli.clientConfig(srv.key.Public(), testProto))
	err := c.Handshake()
	if err == nil {
		err = readAcceptMarker(c)
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// silent opens n silent connections from src and returns them.
func silent(t *testing.T, src, addr string, n int) []net.Conn {
	t.Helper()
	var out []net.Conn
	for range n {
		out = append(out, dialFrom(t, src, addr))
	}
	t.Cleanup(func() {
		for _, c := range out {
			c.Close()
		}
	})
	return out
}

// waitClosed reads c until the server closes it and returns how long that took.
func waitClosed(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("server did not close the connection")
	}
	return time.Since(start)
}

// TestKnownPeersGetReservedSlots: strangers from many sources fill their
// share of pending handshakes; another stranger is refused at once, while a
// known peer (by address, or by an earlier admitted handshake) still connects.
func TestKnownPeersGetReservedSlots(t *testing.T) {
	t.Parallel()
	a, b, c := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	srv := newNode(t, a, admit(b.Public(), c.Public()), Config{
		MaxPendingHandshakes: 16, ReservedPending: 4, MaxPendingPerSource: 4,
		HandshakeTimeout: 10 * time.Second, ClientHelloTimeout: 10 * time.Second, // silent ones stay pending
		KnownAddrs: addrSet{netip.MustParseAddr("127.0.0.1"): true},
	})
	cli := newNode(t, b, admit(), Config{})
	other := newNode(t, c, admit(), Config{})
	serveEcho(t, srv, testProto)

	// c connects once from 127.0.0.9, before the flood: its source is now known.
	conn, err := dialTLSFrom(t, other, srv, "127.0.0.9")
	if err != nil {
		t.Fatalf("c before the flood: %v", err)
	}
	conn.Close()

	for i := 2; i <= 4; i++ {
		silent(t, "127.0.0."+string(rune('0'+i)), srv.addr(), 4)
	}
	waitFor(t, "stranger share full", func() bool { return srv.Stats().Pending == 12 })

	// One more stranger, from a fresh source: refused at once.
	if d := waitClosed(t, dialFrom(t, "127.0.0.5", srv.addr())); d > 5*time.Second {
		t.Fatalf("stranger held for %v", d)
	}
	// A fifth from a flooding source: its own limit.
	if d := waitClosed(t, dialFrom(t, "127.0.0.2", srv.addr())); d > 5*time.Second {
		t.Fatalf("stranger held for %v", d)
	}
	waitFor(t, "refusals counted", func() bool {
		s := srv.Stats()
		return s.ByReason[ReasonOverload] == 1 && s.ByReason[ReasonSourceLimit] == 1
	})

	// The known peer connects through the reserved slots.
	for range 3 {
		conn, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
		if err != nil {
			t.Fatalf("known peer during the flood: %v", err)
		}
		if err := echo(t, conn, "hi"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	// So does c, from the source it used before.
	conn, err = dialTLSFrom(t, other, srv, "127.0.0.9")
	if err != nil {
		t.Fatalf("remembered peer during the flood: %v", err)
	}
	conn.Close()
	if s := srv.Stats(); s.Pending > 16 {
		t.Fatalf("pending %d above the limit", s.Pending)
	}
}

// TestSlowlorisClientHelloIsDropped: a client trickling its ClientHello is
// cut off at ClientHelloTimeout, far before HandshakeTimeout.
func TestSlowlorisClientHelloIsDropped(t *testing.T) {
	t.Parallel()
	srv := newNode(t, testKey(t, 1), admit(), Config{ClientHelloTimeout: 200 * time.Millisecond, HandshakeTimeout: 10 * time.Second})
	c := dialFrom(t, "127.0.0.1", srv.addr())
	defer c.Close()
	// A handshake record announcing 512 bytes, then one byte every 20ms.
	if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range 500 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte{1}); err != nil {
				return
			}
		}
	}()
	d := waitClosed(t, c)
	close(stop)
	<-done
	if d > 2*time.Second {
		t.Fatalf("slowloris held its slot for %v (ClientHelloTimeout 200ms)", d)
	}
	if got := waitRefusal(t, srv.rec, 1); got[0].Reason != ReasonHelloTimeout {
		t.Fatalf("reason %v, want client hello timeout", got[0].Reason)
	}
	if s := srv.Stats(); s.ByReason[ReasonHelloTimeout] != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestOversizedHandshakeIsRefused: a client may send at most
// maxHandshakeBytes during the handshake, though crypto/tls would buffer a
// 64 KiB ClientHello.
func TestOversizedHandshakeIsRefused(t *testing.T) {
	t.Parallel()
	srv := newNode(t, testKey(t, 1), admit(), Config{ClientHelloTimeout: 5 * time.Second})
	c := dialFrom(t, "127.0.0.1", srv.addr())
	defer c.Close()
	// A ClientHello announcing 60000 bytes (under crypto/tls's 64 KiB), sent
	// in full-size records.
	msg := append([]byte{1, 0, 0xea, 0x60}, make([]byte, 60000)...)
	go func() {
		for len(msg) > 0 {
			n := min(len(msg), 16384)
			rec := append([]byte{0x16, 0x03, 0x01, byte(n >> 8), byte(n)}, msg[:n]...)
			if _, err := c.Write(rec); err != nil {
				return
			}
			msg = msg[n:]
		}
	}()
	if d := waitClosed(t, c); d > 4*time.Second {
		t.Fatalf("held for %v", d)
	}
	got := waitRefusal(t, srv.rec, 1)
	if got[0].Reason != ReasonProtocol || !errors.Is(got[0].Err, errHandshakeTooLarge) {
		t.Fatalf("refusal %v (%v), want protocol: %v", got[0].Reason, got[0].Err, errHandshakeTooLarge)
	}
}

// slowConn delays every write after the first (the ClientHello) by delay.
type slowConn struct {
	net.Conn
	delay  time.Duration
	writes atomic.Int32
}

func (c *slowConn) Write(p []byte) (int, error) {
	if c.writes.Add(1) > 1 {
		<-time.After(c.delay) // simulates a slow link, not synchronisation
	}
	return c.Conn.Write(p)
}

// TestCompleteHelloGetsTheWholeHandshakeTimeout: once the ClientHello is in,
// a slow client has the rest of HandshakeTimeout, not ClientHelloTimeout.
func TestCompleteHelloGetsTheWholeHandshakeTimeout(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	// The ClientHello itself must make it in time even on a loaded machine
	// under the race detector; the client's next flight comes 3x later.
	srv := newNode(t, a, admit(b.Public()), Config{ClientHelloTimeout: 500 * time.Millisecond, HandshakeTimeout: 10 * time.Second})
	cli := newNode(t, b, admit(), Config{})
	serveEcho(t, srv, testProto)
	raw := &slowConn{Conn: dialFrom(t, "127.0.0.1", srv.addr()), delay: 1500 * time.Millisecond}
	defer raw.Close()
	c := tls.Client(raw, cli.clientConfig(a.Public(), testProto))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := readAcceptMarker(c); err != nil {
		t.Fatalf("slow but complete handshake refused: %v (server: %v)", err, srv.rec.list())
	}
}

// TestConnsPerPeerEvictOldest: a key's connection beyond MaxConnsPerPeer
// closes that key's oldest of the same protocol; other keys and the key's
// other protocols are untouched.
func TestConnsPerPeerEvictOldest(t *testing.T) {
	t.Parallel()
	a, b, c := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	srv := newNode(t, a, admit(b.Public(), c.Public()), Config{MaxConnsPerPeer: 2})
	cli := newNode(t, b, admit(), Config{})
	other := newNode(t, c, admit(), Config{})
	serveEcho(t, srv, testProto)
	serveEcho(t, srv, "other/1")
	dialProto := func(n *node, proto string) *tls.Conn {
		conn, err := n.Dial(t.Context(), srv.addr(), a.Public(), proto)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	dial := func(n *node) *tls.Conn { return dialProto(n, testProto) }
	oc := dial(other)
	op := dialProto(cli, "other/1") // b's oldest, but of another protocol
	c1, c2 := dial(cli), dial(cli)
	waitFor(t, "conns", func() bool { return srv.Stats().ServerConns == 4 })
	if s := srv.Stats(); s.Evicted != 0 {
		t.Fatalf("evicted at the limit: %+v", s)
	}
	c3 := dial(cli)
	if d := waitClosed(t, c1); d > 5*time.Second {
		t.Fatal("oldest not closed")
	}
	for i, conn := range []net.Conn{c2, c3, oc, op} {
		if err := echo(t, conn, "alive"); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
	}
	if s := srv.Stats(); s.Evicted != 1 || s.ServerConns != 4 {
		t.Fatalf("stats %+v", s)
	}
}

// TestMaxConnsRefuses: at MaxConns (connections plus pending handshakes)
// the next connection is refused.
func TestMaxConnsRefuses(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(b.Public()), Config{MaxConns: 2})
	cli := newNode(t, b, admit(), Config{})
	serveEcho(t, srv, testProto)
	for range 2 {
		conn, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
		if err != nil {
			t.Fatalf("below MaxConns: %v", err)
		}
		defer conn.Close()
	}
	waitFor(t, "two server conns", func() bool { return srv.Stats().ServerConns == 2 })
	_, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
	if he := handshakeErr(t, err); he.Reason != ReasonRefusedByPeer {
		t.Fatalf("at MaxConns: %v", err)
	}
	if got := waitRefusal(t, srv.rec, 1); got[0].Reason != ReasonConnLimit {
		t.Fatalf("server reason %v, want connection limit", got[0].Reason)
	}
}

// TestIdleFederationConnsAreClosed: the server closes a federation
// connection idle for IdleTimeout, the client pool one idle for half of its
// own; the next request redials.
func TestIdleFederationConnsAreClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		srv, cli Config
	}{
		{"server closes", Config{IdleTimeout: 200 * time.Millisecond}, Config{}},
		{"client closes", Config{}, Config{IdleTimeout: 200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, cli, rt, _ := pair(t, tc.srv, tc.cli)
			if _, err := get(t, rt, PeerURL(srv.Self(), "/")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "idle conns closed", func() bool { return srv.Stats().ServerConns == 0 && cli.Stats().Conns == 0 })
			if _, err := get(t, rt, PeerURL(srv.Self(), "/")); err != nil {
				t.Fatalf("after idle close: %v", err)
			}
			if s := cli.Stats(); s.Dialed != 2 {
				t.Fatalf("client dialed %d times, want 2", s.Dialed)
			}
		})
	}
}

// fakeListener fails Accept with err n times, then blocks until closed.
type fakeListener struct {
	mu    sync.Mutex
	calls []time.Time
	n     int
	err   error
	done  chan struct{}
	once  sync.Once
}

func (l *fakeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	fail := len(l.calls) <= l.n
	l.mu.Unlock()
	if fail {
		return nil, l.err
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *fakeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func (l *fakeListener) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// TestAcceptErrorsBackOff: EMFILE from Accept is retried after 4, 8, 16, 16...
// ms (here), counted, and logged once a second with the count.
func TestAcceptErrorsBackOff(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	tr, err := New(Config{Identity: testKey(t, 1), Peers: admit(), Listen: "127.0.0.1:0", Logger: slog.New(recordHandler{rec})})
	if err != nil {
		t.Fatal(err)
	}
	tr.backoffMin, tr.backoffMax = 4*time.Millisecond, 16*time.Millisecond
	const fails = 6
	ln := &fakeListener{n: fails, done: make(chan struct{}),
		err: &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}}
	tr.wg.Add(1)
	go tr.acceptLoop(ln)
	waitFor(t, "all failures retried", func() bool { return len(ln.times()) == fails+1 })
	calls := ln.times()
	want := []time.Duration{4, 8, 16, 16, 16, 16}
	for i, w := range want {
		if gap := calls[i+1].Sub(calls[i]); gap < w*time.Millisecond {
			t.Errorf("retry %d after %v, want at least %v", i+1, gap, w*time.Millisecond)
		}
	}
	if s := tr.Stats(); s.AcceptErrors != fails {
		t.Fatalf("AcceptErrors %d, want %d", s.AcceptErrors, fails)
	}
	ln.Close()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	var lines, count int64
	for _, r := range rec.warnings() {
		if strings.Contains(r.Message, "accept failed") {
			lines++
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "count" {
					count += a.Value.Int64()
				}
				return true
			})
		}
	}
	// Within a second: the first line, then the rest counted into one.
	if lines != 2 || count != fails {
		t.Fatalf("%d accept lines counting %d errors, want 2 lines counting %d", lines, count, fails)
	}
}

// TestRefusalLogsAreRateLimited: 50 refusals of one reason from one source
// cost two log lines, whose counts add up to 50; OnRefused and Stats still see
// every one.
func TestRefusalLogsAreRateLimited(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	tr, err := New(Config{Identity: testKey(t, 1), Peers: admit(), Listen: "127.0.0.1:0",
		Logger: slog.New(recordHandler{rec}), OnRefused: rec.onRefused})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for range n {
		c := dialFrom(t, "127.0.0.2", tr.Addr().String())
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		waitClosed(t, c)
		c.Close()
		// The server frees the source's pending slot just after it closes;
		// on a loaded machine 16 unfreed ones refuse the next dial as
		// "source limit" instead of reading it.
		waitFor(t, "pending slot freed", func() bool { return tr.Stats().Pending == 0 })
	}
	waitFor(t, "refusals", func() bool { return len(rec.list()) == n })
	if s := tr.Stats(); s.ByReason[ReasonProtocol] != n {
		t.Fatalf("stats %+v", s)
	}
	if err := tr.Close(); err != nil { // flushes the counted lines
		t.Fatal(err)
	}
	var lines int
	var count int64
	var first, last time.Time
	for _, r := range rec.warnings() {
		if r.Message != "transport: handshake refused" {
			continue
		}
		lines++
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "count":
				count += a.Value.Int64()
			case "first":
				if first.IsZero() {
					first = a.Value.Time()
				}
			case "last":
				last = a.Value.Time()
			}
			return true
		})
	}
	if lines != 2 || count != n || first.IsZero() || !last.After(first) {
		t.Fatalf("%d lines counting %d refusals (first %v, last %v); want 2 lines counting %d", lines, count, first, last, n)
	}
}

// p99 returns the 99th percentile of ds.
func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*99+99)/100 - 1
	return s[i]
}

// latencyBound is the p99 an attack may cause: 5x the quiet p99, which is
// floored at 2ms so that scheduler noise is not mistaken for the attack.
func latencyBound(quiet time.Duration) time.Duration { return 5 * max(quiet, 2*time.Millisecond) }

// heapInUse returns the heap in use after a GC.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// measureAttack measures the legitimate peer (op, n times) without and during
// the attack, which start launches and the function it returns stops. Every
// op must succeed. The p99 during the attack must stay within latencyBound of
// the quiet p99; on a shared test machine an unrelated stall can break that
// once, so a failed comparison is measured again, up to 3 times in all, each
// time with a fresh quiet measurement and a fresh attack. Under the race
// detector, which slows the handshakes' crypto 5-20x, the latency is reported,
// not asserted. check runs after every attack, for the bounds that must hold
// every time.
func measureAttack(t *testing.T, n int, op func() error, start func() (stop func()), check func()) {
	t.Helper()
	measure := func() []time.Duration {
		ds := make([]time.Duration, 0, n)
		for range n {
			s := time.Now()
			if err := op(); err != nil {
				t.Fatalf("legitimate operation failed: %v", err)
			}
			ds = append(ds, time.Since(s))
		}
		return ds
	}
	for attempt := 1; ; attempt++ {
		quiet := measure()
		heap0 := heapInUse()
		stop := start()
		during := measure()
		stop()
		check()
		if grow := int64(heapInUse()) - int64(heap0); grow > 64<<20 {
			t.Errorf("heap grew by %d MiB during the attack", grow>>20)
		}
		got, bound := p99(during), latencyBound(p99(quiet))
		t.Logf("attempt %d: quiet p99 %v, attack p99 %v (bound %v)", attempt, p99(quiet), got, bound)
		if got <= bound {
			return
		}
		if attempt == 3 {
			if raceEnabled {
				t.Logf("p99 during the attack %v > %v in 3 attempts; not asserted under the race detector", got, bound)
				return
			}
			t.Fatalf("p99 during the attack %v > %v in 3 attempts", got, bound)
		}
	}
}

// TestAttackSilentFlood (issue 8, finding 1): up to 512 silent connections
// from one stranger source, reopened as soon as the node closes them (at most
// 1000 a second). The known peer's
// new handshakes all succeed during the flood, their p99 stays within 5x of
// the quiet p99, and the node holds at most MaxPendingPerSource pending
// handshakes for the stranger, each for at most ClientHelloTimeout.
func TestAttackSilentFlood(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(b.Public()), Config{}) // production defaults
	cli := newNode(t, b, admit(), Config{})
	serveEcho(t, srv, testProto)
	perSource := srv.cfg.MaxPendingPerSource

	handshake := func() error {
		c, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
		if err == nil {
			c.Close()
		}
		return err
	}
	var opened, maxPending atomic.Int64
	flood := func() func() {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		var wg sync.WaitGroup
		slots := make(chan struct{}, 512) // the attacker keeps up to 512 connections open
		wg.Go(func() {
			// Up to 1000 new connections a second, ten times the reported
			// attack: the attacker runs in this process, so an unthrottled
			// dial loop would measure its own CPU, not the node's defence.
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for opened.Load() < 1_000_000 {
				select {
				case <-ctx.Done():
					return
				case slots <- struct{}{}:
				}
				select {
				case <-ctx.Done():
					<-slots
					return
				case <-tick.C:
				}
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
				c, err := d.DialContext(ctx, "tcp", srv.addr())
				if err != nil {
					<-slots
					continue
				}
				opened.Add(1)
				wg.Go(func() {
					defer func() { <-slots }()
					defer c.Close()
					stop := context.AfterFunc(ctx, func() { c.Close() })
					defer stop()
					_, _ = io.Copy(io.Discard, c) // silent until the node closes it
				})
			}
		})
		wg.Go(func() {
			for ctx.Err() == nil {
				if p := int64(srv.Stats().Pending); p > maxPending.Load() {
					maxPending.Store(p)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Millisecond):
				}
			}
		})
		// Measure once the first silent connections have been dropped at
		// ClientHelloTimeout and replaced: the flood is in its steady state.
		base := srv.Stats().ByReason[ReasonHelloTimeout]
		waitFor(t, "flood under way", func() bool {
			return srv.Stats().ByReason[ReasonHelloTimeout] >= base+uint64(perSource)
		})
		return func() { cancel(); wg.Wait() }
	}
	check := func() {
		s := srv.Stats()
		t.Logf("attacker opened %d connections, %d refused at once, %d dropped at ClientHelloTimeout; max pending %d",
			opened.Load(), s.ByReason[ReasonSourceLimit], s.ByReason[ReasonHelloTimeout], maxPending.Load())
		if mp := maxPending.Load(); mp > int64(perSource)+1 { // +1: the legitimate handshake
			t.Errorf("pending handshakes reached %d, want at most %d", mp, perSource+1)
		}
	}
	measureAttack(t, 40, handshake, flood, check)
	// The node needed no restart: it still accepts.
	if err := handshake(); err != nil {
		t.Fatal(err)
	}
}

// TestAttackConnectionHoarding (issue 8, finding 2): an admitted peer opens
// connections and keeps them. The node keeps at most MaxConnsPerPeer of them,
// the legitimate peer's pooled connection is never touched, and its calls'
// p99 stays within 5x of the quiet p99.
func TestAttackConnectionHoarding(t *testing.T) {
	a, b, x := testKey(t, 1), testKey(t, 2), testKey(t, 66)
	srv := newNode(t, a, admit(b.Public(), x.Public()), Config{})
	cli := newNode(t, b, admit(), Config{})
	attacker := newNode(t, x, admit(), Config{})
	serveHTTP(t, srv, http.HandlerFunc(whoami))
	res := &resolver{}
	res.set(a.Public(), srv.addr())
	rt := cli.RoundTripper(res.resolve)
	u := PeerURL(a.Public(), "/")
	call := func() error {
		got, err := get(t, rt, u)
		if err == nil && got != b.Public().String() {
			err = errors.New("wrong answer " + got)
		}
		return err
	}
	var maxConns, opened atomic.Int64
	var evicted0 uint64
	hoard := func() func() {
		maxConns.Store(0)
		opened.Store(0)
		evicted0 = srv.Stats().Evicted
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var held []net.Conn
		wg.Go(func() {
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			// 50 connections a second: the attacker shares this process's
			// CPU, so its own handshakes must not be what slows the peer.
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for range 10_000 { // until the measurement ends
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				c, err := attacker.Dial(ctx, srv.addr(), a.Public(), ProtoFederation)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("attacker dial: %v", err) // it is admitted: each succeeds, then is evicted
					}
					return
				}
				opened.Add(1)
				held = append(held, c)
				if n := int64(srv.Stats().ServerConns); n > maxConns.Load() {
					maxConns.Store(n)
				}
			}
		})
		base := srv.Stats().Evicted
		waitFor(t, "hoarding under way", func() bool { return srv.Stats().Evicted > base+10 })
		return func() { cancel(); wg.Wait() }
	}
	check := func() {
		evicted := srv.Stats().Evicted - evicted0
		t.Logf("attacker opened %d, evicted %d, max server conns %d", opened.Load(), evicted, maxConns.Load())
		if mc := maxConns.Load(); mc > int64(srv.cfg.MaxConnsPerPeer)+1 {
			t.Errorf("server held %d connections, want at most %d (attacker) + 1", mc, srv.cfg.MaxConnsPerPeer)
		}
		if want := opened.Load() - int64(srv.cfg.MaxConnsPerPeer); int64(evicted) < want {
			t.Errorf("evicted %d of %d, want at least %d", evicted, opened.Load(), want)
		}
		if d := cli.Stats().Dialed; d != 1 {
			t.Errorf("the legitimate peer dialed %d times; its pooled connection was disturbed", d)
		}
	}
	measureAttack(t, 100, call, hoard, check)
}
