package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	good := func() Config { return Config{Identity: testKey(t, 1), Peers: admit()} }
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // must appear in the error; "" means no error
	}{
		{"defaults", func(*Config) {}, ""},
		{"no identity", func(c *Config) { c.Identity = identity.PrivateKey{} }, "Config.Identity"},
		{"no peers", func(c *Config) { c.Peers = nil }, "Config.Peers"},
		{"bad listen", func(c *Config) { c.Listen = "nope" }, "Config.Listen"},
		{"handshake timeout low", func(c *Config) { c.HandshakeTimeout = time.Millisecond }, "Config.HandshakeTimeout 1ms outside [100ms, 1m0s]"},
		{"handshake timeout high", func(c *Config) { c.HandshakeTimeout = time.Hour }, "Config.HandshakeTimeout"},
		{"handshake timeout negative", func(c *Config) { c.HandshakeTimeout = -time.Second }, "Config.HandshakeTimeout"},
		{"cert lifetime low", func(c *Config) { c.CertLifetime = time.Second }, "Config.CertLifetime 1s outside"},
		{"cert lifetime high", func(c *Config) { c.CertLifetime = 1000 * time.Hour }, "Config.CertLifetime"},
		{"header bytes low", func(c *Config) { c.MaxHeaderBytes = 10 }, "Config.MaxHeaderBytes 10 outside [1024, 1048576]"},
		{"header bytes negative", func(c *Config) { c.MaxHeaderBytes = -1 }, "Config.MaxHeaderBytes"},
		{"streams high", func(c *Config) { c.MaxConcurrentStreams = 1 << 20 }, "Config.MaxConcurrentStreams"},
		{"edges ok", func(c *Config) {
			c.HandshakeTimeout, c.CertLifetime, c.MaxHeaderBytes, c.MaxConcurrentStreams = 100*time.Millisecond, time.Minute, 1024, 1
		}, ""},
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

func TestDialMutualSuccess(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(b.Public()), Config{})
	cli := newNode(t, b, admit(), Config{})
	serveEcho(t, srv, testProto)

	c, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	cs := c.ConnectionState()
	if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != testProto || cs.DidResume {
		t.Fatalf("version %x proto %q resumed %v", cs.Version, cs.NegotiatedProtocol, cs.DidResume)
	}
	if k, ok := keyOf(cs.PeerCertificates); !ok || k != a.Public() {
		t.Fatalf("server cert key %v, want %v", k, a.Public())
	}
	if err := echo(t, c, "hello"); err != nil {
		t.Fatal(err)
	}
	if s := cli.Stats(); s.Dialed != 1 || s.Handshakes != 1 || s.Refused != 0 {
		t.Fatalf("client stats %+v", s)
	}
	waitFor(t, "server stats", func() bool { return srv.Stats().Accepted == 1 })
	if s := srv.Stats(); s.Refused != 0 || s.Handshakes != 1 {
		t.Fatalf("server stats %+v", s)
	}
}

func TestListenerPeerFromConn(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(b.Public()), Config{})
	cli := newNode(t, b, admit(), Config{})
	l := srv.Listener(testProto)
	defer l.Close()
	if l2 := srv.Listener(testProto); l2 != l {
		t.Fatal("Listener returned a second listener for the same proto")
	}
	got := make(chan identity.PublicKey, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- identity.PublicKey{}
			return
		}
		defer c.Close()
		k, _ := PeerFromConn(c)
		got <- k
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if k := <-got; k != b.Public() {
		t.Fatalf("PeerFromConn = %v, want %v", k, b.Public())
	}
	if _, ok := PeerFromConn(c); ok {
		t.Fatal("PeerFromConn trusted a connection it did not accept")
	}
}

// TestRefusals runs each refusal over real sockets and checks both sides'
// view: the refusing side's Reason and the other side's: NotAdmitted when the
// server refused the client's certificate, RefusedByPeer for other alerts.
func TestRefusals(t *testing.T) {
	t.Parallel()
	a, b, c := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	tests := []struct {
		name       string
		srvCfg     Config
		cliCfg     Config
		srvAdmits  []identity.PublicKey
		want       identity.PublicKey // pinned key; zero means a's
		proto      string             // zero means testProto
		srvReason  Reason             // the server's refusal, 0 if it does not refuse
		cliReason  Reason             // the error Dial returns
		srvRefuses bool
	}{
		{
			name:      "unknown client key",
			srvAdmits: []identity.PublicKey{c.Public()},
			srvReason: ReasonUnknownKey, cliReason: ReasonNotAdmitted,
		},
		{
			name: "server key is not the pinned key",
			want: c.Public(),
			// The client refuses first; the server only sees the alert.
			srvReason: ReasonRefusedByPeer, cliReason: ReasonWrongKey,
		},
		{
			name:      "client certificate expired",
			srvCfg:    Config{Now: at(0)},
			cliCfg:    Config{Now: at(-3 * time.Minute), CertLifetime: time.Minute}, // valid until t0-2m
			srvReason: ReasonCertExpired, cliReason: ReasonNotAdmitted,
		},
		{
			name:      "client certificate not yet valid",
			srvCfg:    Config{Now: at(0)},
			cliCfg:    Config{Now: at(10 * time.Minute)}, // valid from t0+5m
			srvReason: ReasonCertNotYetValid, cliReason: ReasonNotAdmitted,
		},
		{
			name:      "server certificate expired",
			srvCfg:    Config{Now: at(-3 * time.Minute), CertLifetime: time.Minute},
			cliCfg:    Config{Now: at(0)},
			srvReason: ReasonRefusedByPeer, cliReason: ReasonCertExpired,
		},
		{
			name:      "server certificate not yet valid",
			srvCfg:    Config{Now: at(10 * time.Minute)},
			cliCfg:    Config{Now: at(0)},
			srvReason: ReasonRefusedByPeer, cliReason: ReasonCertNotYetValid,
		},
		{
			name:      "unknown ALPN protocol",
			proto:     "bogus/1",
			srvReason: ReasonProtocol, cliReason: ReasonRefusedByPeer,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			admits := tc.srvAdmits
			if admits == nil {
				admits = []identity.PublicKey{b.Public()}
			}
			srv := newNode(t, a, admit(admits...), tc.srvCfg)
			cli := newNode(t, b, admit(), tc.cliCfg)
			serveEcho(t, srv, testProto)
			want, proto := tc.want, tc.proto
			if want.IsZero() {
				want = a.Public()
			}
			if proto == "" {
				proto = testProto
			}

			conn, err := cli.Dial(t.Context(), srv.addr(), want, proto)
			if err == nil {
				conn.Close()
				t.Fatal("Dial succeeded")
			}
			he := handshakeErr(t, err)
			if he.Reason != tc.cliReason || he.Side != sideClient || he.Addr != srv.addr() || he.Peer != want {
				t.Fatalf("client error %+v, want reason %v", he, tc.cliReason)
			}
			if tc.cliReason == ReasonWrongKey && he.Presented != a.Public() {
				t.Fatalf("Presented = %v, want %v", he.Presented, a.Public())
			}
			if got := cli.rec.list(); len(got) != 1 || got[0].Reason != tc.cliReason {
				t.Fatalf("client OnRefused got %+v", got)
			}
			srvGot := waitRefusal(t, srv.rec, 1)
			if srvGot[0].Reason != tc.srvReason || srvGot[0].Side != sideServer {
				t.Fatalf("server refusal %+v (%v), want %v", srvGot[0], srvGot[0].Err, tc.srvReason)
			}
			if tc.srvReason != ReasonRefusedByPeer && tc.srvReason != ReasonProtocol && srvGot[0].Peer != b.Public() {
				t.Fatalf("server refusal names peer %v, want %v", srvGot[0].Peer, b.Public())
			}
			if s := srv.Stats(); s.Accepted != 0 || s.Refused != 1 {
				t.Fatalf("server stats %+v", s)
			}
			if s := cli.Stats(); s.Dialed != 0 || s.Refused != 1 {
				t.Fatalf("client stats %+v", s)
			}
			checkRefusalLogged(t, srv.rec, tc.srvReason)
			checkRefusalLogged(t, cli.rec, tc.cliReason)
		})
	}
}

// checkRefusalLogged finds a Warn record with the refusal's reason, peer and addr.
func checkRefusalLogged(t *testing.T, rec *recorder, reason Reason) {
	t.Helper()
	for _, r := range rec.warnings() {
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		if attrs["reason"] == reason.String() {
			for _, k := range []string{"side", "peer", "addr", "err"} {
				if _, ok := attrs[k]; !ok {
					t.Fatalf("refusal log lacks %q: %v", k, attrs)
				}
			}
			return
		}
	}
	t.Fatalf("no Warn log with reason %q in %d warnings", reason, len(rec.warnings()))
}

func TestRevocationRefusesNextHandshake(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	peers := admit(b.Public())
	srv := newNode(t, a, peers, Config{})
	cli := newNode(t, b, admit(), Config{})
	serveEcho(t, srv, testProto)

	old, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	peers.set(b.Public(), false)

	_, err = cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
	if he := handshakeErr(t, err); he.Reason != ReasonNotAdmitted || !NotAdmitted(err) {
		t.Fatalf("after revocation: %v", err)
	}
	if got := waitRefusal(t, srv.rec, 1); got[0].Reason != ReasonUnknownKey || got[0].Peer != b.Public() {
		t.Fatalf("server refusal %+v", got[0])
	}
	// The connection made before revocation lives until Disconnect.
	if err := echo(t, old, "still"); err != nil {
		t.Fatalf("old connection: %v", err)
	}
	if n := srv.Disconnect(b.Public()); n != 1 {
		t.Fatalf("Disconnect closed %d connections, want 1", n)
	}
	if err := echo(t, old, "gone"); err == nil {
		t.Fatal("old connection survived Disconnect")
	}
	// Re-admission works without restart.
	peers.set(b.Public(), true)
	c, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
	if err != nil {
		t.Fatalf("after re-admission: %v", err)
	}
	c.Close()
}

// rawClient runs a crypto/tls client handshake (not ours) against n.
func rawClient(t *testing.T, n *node, cfg *tls.Config) error {
	t.Helper()
	raw, err := net.Dial("tcp", n.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return err
	}
	return readAcceptMarker(c)
}

func TestServerRefusesNonTreatyClients(t *testing.T) {
	t.Parallel()
	a, b, y := testKey(t, 1), testKey(t, 2), testKey(t, 9)
	bCert, err := newCert(b, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	aCert, err := newCert(a, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ecCert := ecdsaCert(t)
	base := func() *tls.Config {
		return &tls.Config{
			InsecureSkipVerify: true,
			MinVersion:         tls.VersionTLS12,
			NextProtos:         []string{testProto},
			Certificates:       []tls.Certificate{*bCert},
		}
	}
	tests := []struct {
		name   string
		edit   func(*tls.Config)
		reason Reason
	}{
		{"TLS 1.2 only", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, ReasonProtocol},
		{"no ALPN", func(c *tls.Config) { c.NextProtos = nil }, ReasonProtocol},
		{"http/1.1 ALPN only", func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }, ReasonProtocol},
		{"no client certificate", func(c *tls.Config) { c.Certificates = nil }, ReasonNoCertificate},
		{"ECDSA certificate", func(c *tls.Config) { c.Certificates = []tls.Certificate{ecCert} }, ReasonBadCertificate},
		{"certificate chain", func(c *tls.Config) {
			chain := *bCert
			chain.Certificate = [][]byte{bCert.Certificate[0], aCert.Certificate[0]}
			c.Certificates = []tls.Certificate{chain}
		}, ReasonBadCertificate},
		{"admitted peer's certificate without its key", func(c *tls.Config) {
			stolen := *bCert
			stolen.PrivateKey = y.Signer() // cannot sign CertificateVerify for b
			stolen.Leaf = nil
			c.Certificates = []tls.Certificate{stolen}
		}, ReasonProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newNode(t, a, admit(b.Public()), Config{})
			serveEcho(t, srv, testProto)
			cfg := base()
			tc.edit(cfg)
			if err := rawClient(t, srv, cfg); err == nil {
				t.Fatal("handshake succeeded")
			}
			got := waitRefusal(t, srv.rec, 1)
			if got[0].Reason != tc.reason {
				t.Fatalf("server reason %v (%v), want %v", got[0].Reason, got[0].Err, tc.reason)
			}
			if s := srv.Stats(); s.Accepted != 0 {
				t.Fatalf("server accepted: %+v", s)
			}
		})
	}
}

// rawServer runs a crypto/tls server (not ours) with cert on 127.0.0.1:0 and
// calls after on each connection once the handshake is done.
func rawServer(t *testing.T, cfg *tls.Config, after func(*tls.Conn)) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				after(tc)
			}
			tc.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestClientRefusesNonTreatyServers(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	aCert, err := newCert(a, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	base := func() *tls.Config {
		return &tls.Config{
			Certificates: []tls.Certificate{*aCert},
			ClientAuth:   tls.RequestClientCert,
			NextProtos:   []string{testProto},
		}
	}
	tests := []struct {
		name   string
		cfg    func() *tls.Config
		after  func(*tls.Conn)
		reason Reason
	}{
		{"no ALPN chosen", func() *tls.Config { c := base(); c.NextProtos = nil; return c }, func(*tls.Conn) {}, ReasonProtocol},
		{"ECDSA server", func() *tls.Config { c := base(); c.Certificates = []tls.Certificate{ecdsaCert(t)}; return c },
			func(*tls.Conn) {}, ReasonBadCertificate},
		{"no acceptance marker", base, func(c *tls.Conn) { _, _ = io.Copy(io.Discard, c) }, ReasonTimeout},
		{"wrong acceptance marker", base, func(c *tls.Conn) { _, _ = c.Write([]byte("H")) }, ReasonProtocol},
		{"closed without marker", base, func(*tls.Conn) {}, ReasonRefusedByPeer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := rawServer(t, tc.cfg(), tc.after)
			cli := newNode(t, b, admit(), Config{HandshakeTimeout: 300 * time.Millisecond})
			c, err := cli.Dial(t.Context(), addr, a.Public(), testProto)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if he := handshakeErr(t, err); he.Reason != tc.reason {
				t.Fatalf("reason %v (%v), want %v", he.Reason, he.Err, tc.reason)
			}
		})
	}
}

func TestSilentClientTimesOut(t *testing.T) {
	t.Parallel()
	srv := newNode(t, testKey(t, 1), admit(), Config{HandshakeTimeout: 100 * time.Millisecond})
	raw, err := net.Dial("tcp", srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("server did not close the silent connection: %v", err)
	}
	if got := waitRefusal(t, srv.rec, 1); got[0].Reason != ReasonHelloTimeout {
		t.Fatalf("reason %v, want client hello timeout", got[0].Reason)
	}
}

func TestOverloadRefusesBeyondPendingLimit(t *testing.T) {
	t.Parallel()
	srv := newNode(t, testKey(t, 1), admit(), Config{MaxPendingHandshakes: 1})
	first, err := net.Dial("tcp", srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, "first handshake pending", func() bool { return srv.Stats().Pending == 1 })
	second := dialFrom(t, "127.0.0.2", srv.addr()) // another source: the global limit, not the per-source one
	defer second.Close()
	if got := waitRefusal(t, srv.rec, 1); got[0].Reason != ReasonOverload {
		t.Fatalf("reason %v, want overload", got[0].Reason)
	}
}

func TestDialHonoursContext(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	// A server that completes TLS but never sends the marker.
	aCert, err := newCert(a, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := rawServer(t, &tls.Config{Certificates: []tls.Certificate{*aCert}, ClientAuth: tls.RequestClientCert,
		NextProtos: []string{testProto}}, func(c *tls.Conn) { _, _ = io.Copy(io.Discard, c) })
	cli := newNode(t, b, admit(), Config{HandshakeTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = cli.Dial(ctx, addr, a.Public(), testProto)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
	}
	var he *HandshakeError
	if errors.As(err, &he) || cli.Stats().Refused != 0 {
		t.Fatal("a caller's deadline was reported as a refusal")
	}
}

func TestListenerRegistration(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(b.Public()), Config{})
	cli := newNode(t, b, admit(), Config{})

	// Registered after Start: offered from the next handshake on.
	serveEcho(t, srv, "late/1")
	c, err := cli.Dial(t.Context(), srv.addr(), a.Public(), "late/1")
	if err != nil {
		t.Fatalf("Dial late/1: %v", err)
	}
	c.Close()

	// Closing a listener unregisters its protocol.
	l := srv.Listener("gone/1")
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept on closed listener: %v", err)
	}
	_, err = cli.Dial(t.Context(), srv.addr(), a.Public(), "gone/1")
	if he := handshakeErr(t, err); he.Reason != ReasonRefusedByPeer {
		t.Fatalf("Dial gone/1: %v", err)
	}
	if got := waitRefusal(t, srv.rec, 1); got[0].Reason != ReasonProtocol {
		t.Fatalf("server reason %v", got[0].Reason)
	}

	if _, err := srv.Listener("").Accept(); err == nil {
		t.Fatal("empty protocol name accepted")
	}
	if _, err := srv.Listener(strings.Repeat("x", 256)).Accept(); err == nil {
		t.Fatal("256-byte protocol name accepted")
	}
	if _, err := cli.Dial(t.Context(), srv.addr(), a.Public(), ""); err == nil {
		t.Fatal("Dial with empty protocol")
	}
	if _, err := cli.Dial(t.Context(), srv.addr(), identity.PublicKey{}, testProto); err == nil {
		t.Fatal("Dial with zero key")
	}
	// The server offers exactly the registered protocols, treaty/2 first.
	protos := srv.serverTLS.Load().NextProtos
	if !slices.Equal(protos, []string{ProtoFederation2, "late/1", ProtoFederation}) {
		t.Fatalf("offered protocols %v", protos)
	}
}

// TestNoSessionResumption: a client that offers a session ticket still runs
// the full handshake, so every connection is checked against the PeerSource.
func TestNoSessionResumption(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(b.Public()), Config{})
	serveEcho(t, srv, testProto)
	bCert, err := newCert(b, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		InsecureSkipVerify: true,
		NextProtos:         []string{testProto},
		Certificates:       []tls.Certificate{*bCert},
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
	for i := range 2 {
		raw, err := net.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(raw, cfg)
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := readAcceptMarker(c); err != nil {
			t.Fatal(err)
		}
		if err := echo(t, c, "x"); err != nil { // lets a session ticket, if any, arrive
			t.Fatal(err)
		}
		if c.ConnectionState().DidResume {
			t.Fatalf("connection %d resumed a session", i)
		}
		c.Close()
	}
}

func TestDialUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cli := newNode(t, testKey(t, 2), admit(), Config{})
	_, err = cli.Dial(t.Context(), addr, testKey(t, 1).Public(), testProto)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Dial = %v, want ErrUnreachable", err)
	}
	var he *HandshakeError
	if errors.As(err, &he) || cli.Stats().Refused != 0 {
		t.Fatal("an unreachable peer was reported as a refusal")
	}
}
