package transport

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStrangerKeysCannotFillMaxConns: a stranger admitted for one protocol
// only (ProtoAdmitter, the join protocol while an invite is open) costs
// nothing to re-key, so fresh keys must not each get MaxConnsPerPeer
// connections: one source holds at most MaxConnsPerPeer such connections in
// all (a new one closes its oldest), and an admitted peer still gets in at
// MaxConns. Without the per-source bound, 12 stranger keys fill MaxConns and
// the peer is refused with ReasonConnLimit. The evictions cost one log line
// per source, not one per fresh key.
func TestStrangerKeysCannotFillMaxConns(t *testing.T) {
	t.Parallel()
	srvKey, peer := testKey(t, 1), testKey(t, 2)
	const joinProto = "treaty-join-test/1"
	rec := &recorder{}
	tr, err := New(Config{Identity: srvKey, Peers: joinOnly{admit(peer.Public()), joinProto},
		Listen: "127.0.0.1:0", MaxConns: 8, Logger: slog.New(recordHandler{rec})})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	srv := &node{Transport: tr, key: srvKey, rec: rec}
	// The join service holds each connection (as a slow join would).
	l := srv.Listener(joinProto)
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	serveEcho(t, srv, testProto)

	for i := range 12 {
		k := testKey(t, byte(100+i))
		cli, err := New(Config{Identity: k, Peers: admit(), Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cli.Close() })
		c, err := cli.Dial(t.Context(), srv.addr(), srvKey.Public(), joinProto)
		if err != nil {
			t.Fatalf("stranger %d on the join protocol: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	if n, max := srv.Stats().ServerConns, srv.cfg.MaxConnsPerPeer; n > max {
		t.Fatalf("one source's strangers hold %d connections, want at most MaxConnsPerPeer %d", n, max)
	}
	evictLines := 0
	for _, r := range rec.warnings() {
		if strings.Contains(r.Message, "exceeded its connections") {
			evictLines++
		}
	}
	if evictLines != 1 {
		t.Errorf("%d eviction log lines for one source's fresh keys, want 1 until the interval ends", evictLines)
	}
	cli := newNode(t, peer, admit(), Config{})
	c, err := cli.Dial(t.Context(), srv.addr(), srvKey.Public(), testProto)
	if err != nil {
		t.Fatalf("admitted peer after a stranger flood: %v", err)
	}
	defer c.Close()
	if err := echo(t, c, "hi"); err != nil {
		t.Fatal(err)
	}
}

// TestStrangerHandshakeDoesNotMakeItsSourceKnown: a source becomes known (and
// may use the ReservedPending slots) only by an admitted peer's handshake. A
// stranger finishing a join handshake (ProtoAdmitter) must not earn its
// source a place in the share kept for known peers. Without the fix its
// second silent connection took a reserved slot instead of being refused.
func TestStrangerHandshakeDoesNotMakeItsSourceKnown(t *testing.T) {
	t.Parallel()
	srvKey, stranger := testKey(t, 1), testKey(t, 2)
	const joinProto = "treaty-join-test/1"
	rec := &recorder{}
	tr, err := New(Config{Identity: srvKey, Peers: joinOnly{admit(), joinProto}, Listen: "127.0.0.1:0",
		MaxPendingHandshakes: 4, ReservedPending: 3, MaxPendingPerSource: 4,
		HandshakeTimeout: 10 * time.Second, ClientHelloTimeout: 10 * time.Second, // silent ones stay pending
		OnRefused: rec.onRefused})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	srv := &node{Transport: tr, key: srvKey, rec: rec}
	serveEcho(t, srv, joinProto)
	cli, err := New(Config{Identity: stranger, Peers: admit(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })

	const src = "127.0.0.7"
	raw := dialFrom(t, src, srv.addr())
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, cli.clientConfig(srvKey.Public(), joinProto))
	if err := c.Handshake(); err != nil {
		t.Fatalf("stranger's join handshake: %v", err)
	}
	if err := readAcceptMarker(c); err != nil {
		t.Fatalf("stranger's join handshake: %v", err)
	}
	c.Close()

	silent(t, src, srv.addr(), 1) // the one slot strangers have
	waitFor(t, "stranger slot taken", func() bool { return srv.Stats().Pending == 1 })
	silent(t, src, srv.addr(), 1)
	waitFor(t, "second silent connection decided", func() bool {
		s := srv.Stats()
		return s.Pending == 2 || s.ByReason[ReasonOverload] == 1
	})
	if s := srv.Stats(); s.ByReason[ReasonOverload] != 1 {
		t.Fatalf("a stranger's source took a reserved slot: pending %d, refused %v", s.Pending, s.ByReason)
	}
}
