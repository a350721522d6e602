package transport

import (
	"context"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/treaty-dev/treaty/internal/identity"
)

const (
	// Health checks of idle pooled connections: a ping after this much silence,
	// and the connection is dropped (and later redialed) if it goes unanswered.
	pingAfter   = 30 * time.Second
	pingTimeout = 15 * time.Second
)

type peerCtxKey struct{}

// ServeHTTP serves the federation API with h on every accepted federation
// connection, until ctx is done or the Transport is closed; then it closes
// the connections it serves and returns nil once their goroutines have
// ended. Handlers get the caller's key from PeerFromRequest.
//
// It serves both federation protocols: ProtoFederation2 (the lean framing,
// treaty2server.go) and ProtoFederation (HTTP/2 by x/net/http2's
// Server.ServeConn, used directly because the ALPN name is "treaty/1", not
// "h2", which net/http's server would not treat as HTTP/2). MaxHeaderBytes
// and MaxConcurrentStreams from Config apply per connection, to both; a
// connection without requests for IdleTimeout is closed.
func (t *Transport) ServeHTTP(ctx context.Context, h http.Handler) error {
	if h == nil {
		return errors.New("transport: ServeHTTP: nil handler")
	}
	l, ok := t.Listener(ProtoFederation).(*protoListener)
	if !ok {
		return errors.New("transport: ServeHTTP: no federation listener")
	}
	srv := &http2.Server{
		MaxConcurrentStreams: t.cfg.MaxConcurrentStreams,
		// Idle connections are closed, and dead ones found by a ping, so a
		// peer cannot park connections here.
		IdleTimeout:     t.cfg.IdleTimeout,
		ReadIdleTimeout: pingAfter,
		PingTimeout:     pingTimeout,
	}
	base := &http.Server{
		MaxHeaderBytes: t.cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup // this call's connection goroutines
	defer func() {
		cancel() // closes the connections still served (AfterFunc below)
		wg.Wait()
	}()
	serve := func(c *serverConn) {
		connCtx := context.WithValue(ctx, peerCtxKey{}, c.peer)
		if c.proto == ProtoFederation2 {
			t.serveTreaty2(connCtx, c, h)
			return
		}
		srv.ServeConn(c, &http2.ServeConnOpts{Context: connCtx, BaseConfig: base, Handler: h})
	}
	var l2 *protoListener
	if !t.cfg.DisableTreaty2 {
		l2 = t.lookup(ProtoFederation2)
	}
	for {
		c, err := acceptFrom(ctx, l, l2)
		if err != nil {
			return nil // ctx done, or a listener or the Transport closed
		}
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		wg.Add(1)
		started := t.goTracked(func() {
			defer wg.Done()
			defer stop()
			defer c.Close()
			serve(c)
		})
		if !started {
			wg.Done()
			stop()
			_ = c.Close()
			return nil
		}
	}
}

// PeerFromRequest returns the caller's key, proven by the handshake of the
// connection the request came on. It reports false for requests that did not
// arrive through ServeHTTP.
func PeerFromRequest(r *http.Request) (identity.PublicKey, bool) {
	k, ok := r.Context().Value(peerCtxKey{}).(identity.PublicKey)
	return k, ok && !k.IsZero()
}

// hostEncoding turns a key into a DNS label: lower-case base32, 52 characters.
var hostEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// PeerURL returns "https://<label>/path" where label is derived from peer's
// key and nothing else, so that RoundTripper can recover the key from the URL
// and pool connections by key. path gets a leading "/" if it lacks one.
func PeerURL(peer identity.PublicKey, path string) string {
	var buf [128]byte // most URLs: one allocation, the string's
	b := AppendPeerHost(append(buf[:0], "https://"...), peer)
	if !strings.HasPrefix(path, "/") {
		b = append(b, '/')
	}
	return string(append(b, path...))
}

// AppendPeerHost appends the host of PeerURL(peer, path): peer's key as a
// DNS label.
func AppendPeerHost(b []byte, peer identity.PublicKey) []byte {
	k := peer.Array()
	return hostEncoding.AppendEncode(b, k[:])
}

// ErrNotPeerURL is returned by the RoundTripper for a URL not made by PeerURL.
var ErrNotPeerURL = errors.New("transport: URL host is not a PeerURL host")

// peerFromHost inverts PeerURL's host label; a port, if any, is ignored.
func peerFromHost(host string) (identity.PublicKey, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if len(host) != hostEncoding.EncodedLen(32) {
		return identity.PublicKey{}, ErrNotPeerURL
	}
	b, err := hostEncoding.DecodeString(strings.ToLower(host))
	if err != nil {
		return identity.PublicKey{}, ErrNotPeerURL
	}
	k, err := identity.PublicKeyFromEd25519(b)
	if err != nil {
		return identity.PublicKey{}, fmt.Errorf("%w: %w", ErrNotPeerURL, err)
	}
	// Canonical only: base32's last character has unused bits.
	if hostEncoding.EncodeToString(b) != strings.ToLower(host) {
		return identity.PublicKey{}, ErrNotPeerURL
	}
	return k, nil
}

// RoundTripper returns an HTTP/2 client for PeerURL URLs. It keeps one
// long-lived connection per peer key (not per address): concurrent requests
// share it, the first request to a peer dials once (resolve is called then,
// not per request), and a connection that died is redialed on the next
// request. Requests wait for a free stream rather than open a second
// connection. Dial refusals come back from RoundTrip as *HandshakeError
// (through *url.Error when using http.Client). Close closes its connections; a
// connection without requests for IdleTimeout/2 is closed too.
func (t *Transport) RoundTripper(resolve Resolver) http.RoundTripper {
	return t.RoutedRoundTripper(func(ctx context.Context, k identity.PublicKey) (Route, error) {
		addr, err := resolve(ctx, k)
		return Route{Addr: addr}, err
	})
}

// RoutedRoundTripper is RoundTripper for peers some of which are reached
// through a relay (relay.go): route says how to reach each.
func (t *Transport) RoutedRoundTripper(route Router) http.RoundTripper {
	rt := &roundTripper{t: t, route: route}
	rt.h2 = &http2.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			return rt.dial(ctx, addr, route)
		},
		// One connection per peer; never a second one for excess streams.
		StrictMaxConcurrentStreams: true,
		// Signed bodies must arrive exactly as sent: no transparent gzip.
		DisableCompression: true,
		ReadIdleTimeout:    pingAfter,
		PingTimeout:        pingTimeout,
		// Half the server's IdleTimeout: the client knows when it is idle and
		// closes first, so it never sends on a connection the server is closing.
		IdleConnTimeout: t.cfg.IdleTimeout / 2,
	}
	return rt
}

type roundTripper struct {
	t     *Transport
	h2    *http2.Transport
	route Router

	mu      sync.Mutex
	refused map[identity.PublicKey]earlyRefusal // per peer, its early connection's last refusal
	hosts   map[string]identity.PublicKey       // PeerURL hosts seen, decoded once (at most maxHosts)
	f2      map[identity.PublicKey]*f2client    // treaty/2 connections
	dialing map[identity.PublicKey]*f2dial      // treaty/2 dials in progress
	v1      map[identity.PublicKey]time.Time    // peers that chose treaty/1 or are relayed, until
	stash   map[identity.PublicKey]*clientConn  // a treaty/1 connection dialed for treaty/2, for http2's dial
}

// maxHosts bounds roundTripper.hosts; hosts beyond it are decoded per request.
const maxHosts = 4096

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "https" {
		closeBody(req)
		return nil, ErrNotPeerURL
	}
	peer, err := rt.peer(req.URL.Host)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if !rt.t.cfg.DisableTreaty2 && !rt.isV1(peer) {
		if resp, err, ok := rt.roundTrip2(req, peer); ok {
			return resp, err
		}
	}
	before := rt.refusal(peer)
	resp, err := rt.h2.RoundTrip(req)
	if c := rt.unstash(peer); c != nil {
		_ = c.Close() // http2 had a connection already
	}
	if err != nil && req.Context().Err() == nil {
		// A refusal read by the connection's reader can reach this request as
		// a generic connection error (http2 reports a connection that died
		// before its first stream opened as "could not be established"); the
		// request gets the refusal itself.
		var he *HandshakeError
		if r := rt.refusal(peer); r.n != before.n && !errors.As(err, &he) {
			err = r.err
		}
	}
	return resp, err
}

// peer returns the key a PeerURL host names. Hosts are remembered: decoding
// one and naming its key (base58) cost ~5 µs, on every call.
func (rt *roundTripper) peer(host string) (identity.PublicKey, error) {
	rt.mu.Lock()
	p, ok := rt.hosts[host]
	rt.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := peerFromHost(host)
	if err != nil {
		return p, err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.hosts == nil {
		rt.hosts = make(map[string]identity.PublicKey)
	}
	if len(rt.hosts) < maxHosts {
		rt.hosts[host] = p
	}
	return p, nil
}

// earlyRefusal is a refused early connection: n counts them per peer.
type earlyRefusal struct {
	n   uint64
	err error
}

func (rt *roundTripper) refusal(peer identity.PublicKey) earlyRefusal {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.refused[peer]
}

// noteRefusal records a refusal of peer's early connection (err nil: peer
// accepted one, and its record is dropped, so the map holds only peers whose
// latest connection was refused).
func (rt *roundTripper) noteRefusal(peer identity.PublicKey, err error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err == nil {
		delete(rt.refused, peer)
		return
	}
	if rt.refused == nil {
		rt.refused = make(map[identity.PublicKey]earlyRefusal)
	}
	rt.refused[peer] = earlyRefusal{n: rt.refused[peer].n + 1, err: err}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// dial is called by the http2 pool, at most once at a time per host label.
func (rt *roundTripper) dial(ctx context.Context, hostport string, route Router) (net.Conn, error) {
	t := rt.t
	peer, err := peerFromHost(hostport)
	if err != nil {
		return nil, err
	}
	if c := rt.unstash(peer); c != nil {
		return c, nil // dialed offering treaty/2; the peer chose treaty/1
	}
	// The dial serves every request waiting for this peer, but ctx is the first
	// request's; still bound it by the Transport's life.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.ctx, cancel)()
	r, err := route(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("transport: resolve %s: %w", peer.Short(), err)
	}
	addr := r.Addr
	c := &clientConn{peer: peer, t: t, addr: addr, rt: rt}
	if r.Relay.IsZero() {
		// The first request goes out with the handshake's last flight; the
		// acceptance marker is read as the first byte of the answer (clientConn).
		c.Conn, err = t.dial(ctx, addr, peer, false, ProtoFederation)
		c.early = true
	} else {
		c.Conn, err = t.DialVia(ctx, addr, r.Relay, peer, ProtoFederation)
	}
	if err != nil {
		return nil, err
	}
	tc := c.Conn
	if !t.track(c) {
		_ = tc.Close()
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrClosed)
	}
	return c, nil
}
