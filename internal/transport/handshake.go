package transport

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// baseTLS is the configuration both sides share: TLS 1.3 only and no session
// tickets. Every connection runs a full handshake, so the peer proves
// possession of its key each time and the same checks run on the same fresh
// certificate; there is no ticket key to rotate or leak.
func (t *Transport) baseTLS() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
	}
}

// rebuildServerConfigLocked makes the server configuration that all server
// handshakes share; it runs whenever the set of protocols changes.
func (t *Transport) rebuildServerConfigLocked() {
	cfg := t.baseTLS()
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.certs.get() }
	// RequestClientCert, not Require*VerifiedClientCert: there is no CA to
	// verify against. verifyClient demands and checks the certificate itself,
	// and an absent one is reported as ReasonNoCertificate rather than as an
	// opaque crypto/tls error.
	cfg.ClientAuth = tls.RequestClientCert
	cfg.VerifyConnection = t.verifyClient
	// crypto/tls calls this once the whole ClientHello has arrived: the
	// short ClientHelloTimeout gives way to the rest of HandshakeTimeout.
	cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		if hc, ok := chi.Conn.(*helloConn); ok {
			hc.helloDone()
		}
		return nil, nil
	}
	for p := range t.listeners {
		cfg.NextProtos = append(cfg.NextProtos, p)
	}
	// crypto/tls picks the first of these the client offers: sorted, a
	// client offering several gets the same one whatever the order of
	// registration (a map's), and the lean federation framing before
	// HTTP/2.
	slices.SortFunc(cfg.NextProtos, func(a, b string) int {
		return cmp.Or(cmp.Compare(protoRank(a), protoRank(b)), cmp.Compare(a, b))
	})
	t.serverTLS.Store(cfg)
}

// protoRank orders the server's protocols: treaty/2 first.
func protoRank(p string) int {
	if p == ProtoFederation2 {
		return 0
	}
	return 1
}

// verifyClient is the server's whole trust decision (see verifyPeerCert).
func (t *Transport) verifyClient(cs tls.ConnectionState) error {
	if cs.NegotiatedProtocol == "" || !t.hasProto(cs.NegotiatedProtocol) {
		return &verifyError{reason: ReasonProtocol, msg: "client negotiated no known ALPN protocol"}
	}
	_, err := verifyPeerCert(cs.PeerCertificates, t.cfg.Now(), func(k identity.PublicKey) *verifyError {
		if !t.cfg.Peers.Admitted(k) && !admittedFor(t.cfg.Peers, k, cs.NegotiatedProtocol) {
			return &verifyError{reason: ReasonUnknownKey, msg: "client key " + k.String() + " is not an admitted peer"}
		}
		return nil
	})
	return err
}

// clientConfig is built per dial: it pins want and offers protos, most
// preferred first; the server must pick one of them.
func (t *Transport) clientConfig(want identity.PublicKey, protos ...string) *tls.Config {
	cfg := t.baseTLS()
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return t.certs.get() }
	cfg.NextProtos = protos
	// InsecureSkipVerify turns off CA chain and hostname verification only;
	// VerifyConnection below replaces them with the pinned-key check, and
	// crypto/tls still verifies the server's CertificateVerify signature with
	// the certificate's key. See the package comment.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if !slices.Contains(protos, cs.NegotiatedProtocol) {
			return &verifyError{reason: ReasonProtocol, peer: want,
				msg: fmt.Sprintf("server negotiated ALPN %q, want %s", cs.NegotiatedProtocol, strings.Join(protos, " or "))}
		}
		_, err := verifyPeerCert(cs.PeerCertificates, t.cfg.Now(), func(k identity.PublicKey) *verifyError {
			if !k.Equal(want) {
				return &verifyError{reason: ReasonWrongKey, presented: k,
					msg: fmt.Sprintf("server key is %s, want %s", k, want)}
			}
			return nil
		})
		return err
	}
	return cfg
}

// acceptLoop accepts until ln is closed. Each connection first gets a pending
// slot (see admission) and a place under MaxConns; otherwise it is closed at
// once, before any byte is read. Accept errors (EMFILE, ENFILE...) back off
// exponentially, as net/http's server does, so a full descriptor table is not
// spun on, and are logged at most once a second with their count.
func (t *Transport) acceptLoop(ln net.Listener) {
	defer t.wg.Done()
	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			t.acceptErrs.Add(1)
			backoff = min(max(2*backoff, t.backoffMin), t.backoffMax)
			t.acceptLog.Log(context.Background(), slog.LevelWarn, "accept", "transport: accept failed; backing off",
				"err", err, "backoff", backoff)
			timer := time.NewTimer(backoff)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		backoff = 0
		src := source(raw.RemoteAddr())
		reason, rerr := t.admit(raw, src)
		if reason != 0 {
			_ = raw.Close()
			t.refuse(&HandshakeError{Side: sideServer, Addr: raw.RemoteAddr().String(), Reason: reason, Err: rerr})
			continue
		}
		if !t.goTracked(func() { t.serverHandshake(raw, src) }) {
			t.adm.leave(src)
			_ = raw.Close()
			return
		}
	}
}

// admit takes a pending slot for a new connection from src, or says why not.
func (t *Transport) admit(raw net.Conn, src netip.Prefix) (Reason, error) {
	if n, p := t.serverConns(), t.adm.pending(); n+p >= t.cfg.MaxConns {
		return ReasonConnLimit, fmt.Errorf("%d connections and %d handshakes already (MaxConns %d)", n, p, t.cfg.MaxConns)
	}
	known := false
	if t.cfg.KnownAddrs != nil {
		if ap, err := netip.ParseAddrPort(raw.RemoteAddr().String()); err == nil {
			known = t.cfg.KnownAddrs.KnownAddr(ap.Addr().Unmap().WithZone(""))
		}
	}
	return t.adm.enter(src, known, time.Now())
}

// maxHandshakeBytes bounds what a client may send during the handshake.
// crypto/tls accepts a 64 KiB ClientHello and a 256 KiB certificate message;
// a treaty client sends about 1.5 KiB, and the cap keeps each pending
// handshake's buffers small.
const maxHandshakeBytes = 32 << 10

var errHandshakeTooLarge = fmt.Errorf("client sent more than %d bytes during the handshake", maxHandshakeBytes)

// helloConn is the connection under a server handshake: until the ClientHello
// is complete its deadline is ClientHelloTimeout, then HandshakeTimeout; until
// the handshake is over, at most maxHandshakeBytes may be read.
type helloConn struct {
	net.Conn
	end   time.Time // of the whole handshake
	hello atomic.Bool
	done  atomic.Bool // handshake over: Read is the plain connection's
	read  int         // bytes read before done; only the handshake goroutine touches it
}

func (c *helloConn) helloDone() {
	if !c.hello.Swap(true) {
		_ = c.Conn.SetDeadline(c.end)
	}
}

func (c *helloConn) Read(p []byte) (int, error) {
	if c.done.Load() {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p)
	if c.read += n; c.read > maxHandshakeBytes {
		return n, errHandshakeTooLarge
	}
	return n, err
}

// serverHandshake runs one server-side handshake (ClientHello within
// ClientHelloTimeout, all of it within HandshakeTimeout) and hands the
// connection to the Listener of its protocol, whose Accept writes the
// acceptance marker. It owns src's pending slot until the client is verified.
func (t *Transport) serverHandshake(raw net.Conn, src netip.Prefix) {
	released := false
	release := func() {
		if !released {
			released = true
			t.adm.leave(src)
		}
	}
	defer release()
	addr := raw.RemoteAddr().String()
	start := time.Now()
	dl := start.Add(t.cfg.HandshakeTimeout)
	hc := &helloConn{Conn: raw, end: dl}
	_ = raw.SetDeadline(start.Add(t.cfg.ClientHelloTimeout)) // a silent client cannot hold a slot longer
	tc := tls.Server(hc, t.serverTLS.Load())
	if err := tc.HandshakeContext(t.ctx); err != nil {
		_ = raw.Close()
		if t.ctx.Err() != nil {
			return // closing: not a refusal
		}
		he := classify(sideServer, addr, err)
		if he.Reason == ReasonTimeout && !hc.hello.Load() {
			he.Reason = ReasonHelloTimeout
		}
		t.refuse(he)
		return
	}
	hc.done.Store(true)
	cs := tc.ConnectionState()
	peer, _ := keyOf(cs.PeerCertificates)
	// A key admitted for this protocol only (ProtoAdmitter) is a stranger's:
	// free to make, so it neither makes its source known nor gets a
	// MaxConnsPerPeer of its own (its source does).
	group := connKey{proto: cs.NegotiatedProtocol, src: src}
	if t.cfg.Peers.Admitted(peer) {
		group = connKey{peer: peer, proto: cs.NegotiatedProtocol}
		t.adm.remember(src, time.Now())
	}
	t.handshakesIn.Add(1)
	t.log.Debug("transport: accepted", "peer", peer.Short(), "addr", addr, "proto", cs.NegotiatedProtocol,
		"took", time.Since(start))
	release() // the handshake is done; waiting for an acceptor is bounded below

	l := t.lookup(cs.NegotiatedProtocol)
	sc := &serverConn{Conn: tc, peer: peer, proto: cs.NegotiatedProtocol, group: group, t: t}
	if l == nil {
		_ = tc.Close()
		return
	}
	ok, evict := t.trackServer(sc)
	if !ok {
		_ = tc.Close()
		return
	}
	if evict != nil {
		t.evicted.Add(1)
		who := peer.String()
		if group.peer.IsZero() {
			who = src.String() // a stranger's fresh keys share one line
		}
		t.refusalLog.Log(context.Background(), slog.LevelWarn, "evict|"+who,
			"transport: peer exceeded its connections; closing its oldest", "peer", peer.Short(),
			"addr", evict.RemoteAddr().String(), "max_conns_per_peer", t.cfg.MaxConnsPerPeer)
		_ = evict.Close()
	}
	timer := time.NewTimer(time.Until(dl))
	defer timer.Stop()
	select {
	case l.ch <- sc:
	case <-l.done:
		_ = sc.Close()
	case <-t.ctx.Done():
		_ = sc.Close()
	case <-timer.C:
		t.refusalLog.Log(context.Background(), slog.LevelWarn, "noacceptor|"+cs.NegotiatedProtocol,
			"transport: no acceptor for protocol; closing", "proto", cs.NegotiatedProtocol, "peer", peer.Short(), "addr", addr)
		_ = sc.Close()
	}
}

// errServerHandshakeTooLarge: the client side of maxHandshakeBytes.
var errServerHandshakeTooLarge = fmt.Errorf("server sent more than %d bytes during the handshake", maxHandshakeBytes)

// capConn is the connection under a client handshake: until done, at most
// maxHandshakeBytes may be read from the server (a treaty server sends about
// 2 KiB; crypto/tls alone would accept a 256 KiB certificate message).
type capConn struct {
	net.Conn
	done atomic.Bool
	read atomic.Int64
}

func (c *capConn) Read(p []byte) (int, error) {
	if c.done.Load() {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p)
	if c.read.Add(int64(n)) > maxHandshakeBytes {
		return n, errServerHandshakeTooLarge
	}
	return n, err
}

// clientHandshake runs the client side of a TLS handshake over under,
// capped by maxHandshakeBytes.
func clientHandshake(ctx context.Context, under net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	cc := &capConn{Conn: under}
	tc := tls.Client(cc, cfg)
	err := tc.HandshakeContext(ctx)
	cc.done.Store(true)
	return tc, err
}

// keyOf returns the key of an already verified single certificate.
func keyOf(certs []*x509.Certificate) (identity.PublicKey, bool) {
	if len(certs) != 1 {
		return identity.PublicKey{}, false
	}
	ed, ok := certs[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return identity.PublicKey{}, false
	}
	k, err := identity.PublicKeyFromEd25519(ed)
	return k, err == nil
}

// aLongTimeAgo is a deadline in the past, used to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// Dial connects to addr and returns a TLS connection speaking proto with the
// peer whose key is want; any other server key is refused (ReasonWrongKey).
// The caller owns the returned connection.
//
// Dial returns only after the server has accepted this client. In TLS 1.3 the
// client finishes its handshake one flight before the server has checked the
// client certificate, so a refusal would otherwise surface only at the first
// read, as an alert, far from the dial. Therefore a treaty server, once it has
// verified the client and a Listener for proto has taken the connection,
// writes one acceptance byte, and Dial reads it within HandshakeTimeout. A
// certificate alert in its place becomes a *HandshakeError with
// ReasonNotAdmitted, any other alert or a close ReasonRefusedByPeer. A session ticket could carry the same signal, but
// tickets are disabled (see baseTLS) and crypto/tls does not report their
// arrival. Waiting for the byte costs a round trip per connection; the
// federation RoundTripper does not wait (see clientConn, early.go).
//
// Refusals are *HandshakeError (errors.As). A failed TCP connect wraps
// ErrUnreachable; a done ctx wraps ctx.Err(); neither counts as a refusal.
func (t *Transport) Dial(ctx context.Context, addr string, want identity.PublicKey, proto string) (*tls.Conn, error) {
	return t.dial(ctx, addr, want, true, proto)
}

// dial is Dial offering protos (most preferred first; the connection state
// says which one the server chose); with waitAccept false it returns as soon
// as the TLS handshake is done (the server is authenticated and pinned),
// before the acceptance marker, which must then arrive within
// HandshakeTimeout of the dial's start.
func (t *Transport) dial(ctx context.Context, addr string, want identity.PublicKey, waitAccept bool, protos ...string) (*tls.Conn, error) {
	if want.IsZero() {
		return nil, errors.New("transport: dial: zero peer key")
	}
	for _, proto := range protos {
		if err := checkProto(proto); err != nil {
			return nil, fmt.Errorf("transport: dial: %w", err)
		}
	}
	if t.ctx.Err() != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrClosed)
	}
	start := time.Now()
	d := net.Dialer{Timeout: t.cfg.HandshakeTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("transport: dial %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("transport: dial %s: %w: %w", addr, ErrUnreachable, err)
	}
	dl, ctxDeadline := deadline(ctx, t.cfg.HandshakeTimeout)
	_ = raw.SetDeadline(dl)
	interrupt := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(aLongTimeAgo) })
	// Not HandshakeContext: interrupt above ends the handshake and the
	// marker read alike, by the deadline.
	tc, err := clientHandshake(context.Background(), raw, t.clientConfig(want, protos...))
	if err == nil && waitAccept {
		err = readAcceptMarker(tc)
	}
	if !interrupt() && err == nil {
		err = ctx.Err() // ctx ended just as we succeeded: honour it
	}
	if err != nil {
		_ = raw.Close()
		if ctx.Err() != nil || (ctxDeadline && isTimeout(err)) {
			cerr := ctx.Err()
			if cerr == nil {
				cerr = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("transport: dial %s: %w", addr, cerr)
		}
		he := classify(sideClient, addr, err)
		he.Peer = want // the server's claimed key, if any, is in Presented
		return nil, t.refuse(he)
	}
	_ = raw.SetDeadline(time.Time{})
	if !waitAccept {
		// The marker is read by the connection's first Read; the connection is
		// shared by every request then, so the first request's ctx no longer
		// bounds it, the handshake's own timeout does.
		_ = raw.SetReadDeadline(start.Add(t.cfg.HandshakeTimeout))
		return tc, nil
	}
	t.handshakesOut.Add(1)
	t.log.Debug("transport: dialed", "peer", want.Short(), "addr", addr, "proto", tc.ConnectionState().NegotiatedProtocol, "took", time.Since(start))
	return tc, nil
}

func readAcceptMarker(tc *tls.Conn) error {
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		return err
	}
	if b[0] != acceptMarker {
		return errBadMarker
	}
	return nil
}

// checkProto validates an ALPN protocol name (RFC 7301: 1 to 255 bytes).
func checkProto(proto string) error {
	if len(proto) == 0 || len(proto) > 255 {
		return fmt.Errorf("ALPN protocol name %q must be 1 to 255 bytes", proto)
	}
	return nil
}
