// Package transport is treaty's only network door: one TCP port, TLS 1.3 with
// certificates on both sides, where a peer is accepted only if its certificate
// key is its identity key and that key is admitted (server side) or is exactly
// the key the dialer pinned (client side).
//
// There is no CA and no hostname trust. Each node presents a short-lived
// certificate, self-signed with its ed25519 identity key and regenerated before
// it expires. Because crypto/tls knows no such trust model, its chain
// verification is switched off (InsecureSkipVerify on the client, a requested
// but unverified client certificate on the server) and replaced by
// verifyPeerCert, run from VerifyConnection on every handshake: exactly one
// certificate, ed25519, validly self-signed, admitted or pinned, within its
// validity at Config.Now. That is safe here: crypto/tls still proves the peer
// holds the certificate's private key (CertificateVerify), and the certificate
// is trusted only as the carrier of that key, which is exactly what the
// replacement checks; names and issuers mean nothing in treaty.
//
// One port carries several protocols, selected by ALPN (ProtoFederation, and
// later raft, gossip and bft); an unknown or missing protocol fails the
// handshake. Session resumption is disabled, so every connection runs a full
// handshake and the checks against the PeerSource as it is at that moment.
//
// Every refused handshake, on either side, is logged (peer short id, address,
// reason), counted in Stats, passed to Config.OnRefused and returned as a
// *HandshakeError.
//
// Limits: revocation affects new handshakes at once; connections that are
// already up stay up until Disconnect or Close. Clock checks use Config.Now;
// I/O deadlines use the real clock.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// ProtoFederation is the ALPN name of the federation API: HTTP/2 (see
// ServeHTTP and RoundTripper). Later protocols get their own names
// ("treaty-raft/1", "treaty-gossip/1", "treaty-bft/1") on the same port.
const ProtoFederation = "treaty/1"

// PeerSource decides which keys may finish a handshake with this node's server
// side. Admitted is called on every handshake, concurrently, so a revocation
// takes effect for the next connection at once; it must be fast and not block.
type PeerSource interface {
	Admitted(identity.PublicKey) bool
}

// Resolver returns the address to dial for a peer key (RoundTripper calls it
// once per new connection, not per request).
type Resolver func(ctx context.Context, peer identity.PublicKey) (addr string, err error)

const (
	defaultListen           = "127.0.0.1:7420"
	defaultHandshakeTimeout = 5 * time.Second
	minHandshakeTimeout     = 100 * time.Millisecond
	maxHandshakeTimeout     = time.Minute
	defaultCertLifetime     = time.Hour
	minCertLifetime         = time.Minute
	maxCertLifetime         = 30 * 24 * time.Hour
	defaultMaxHeaderBytes   = 16 << 10
	minMaxHeaderBytes       = 1 << 10
	maxMaxHeaderBytes       = 1 << 20
	defaultMaxStreams       = 256
	maxMaxStreams           = 10000

	// maxPendingHandshakes bounds server-side handshakes in progress, so a flood
	// of silent connections costs at most this many goroutines for at most
	// HandshakeTimeout each. Beyond it, new connections are closed at once.
	maxPendingHandshakes = 512

	// acceptMarker is the first application byte a server writes once it has
	// verified the client and handed the connection to a protocol's Listener.
	acceptMarker byte = 0x01

	sideServer = "server"
	sideClient = "client"
)

// Config configures a Transport. Identity and Peers are required; a zero value
// takes the default noted on its field.
type Config struct {
	Identity identity.PrivateKey // required: the node's key; its certificate is self-signed with it
	Peers    PeerSource          // required: decides which client keys may finish a handshake
	// Listen is the TCP address Start binds. Zero: "127.0.0.1:7420";
	// "127.0.0.1:0" picks a free port (see Addr).
	Listen string
	// HandshakeTimeout bounds a whole handshake on either side, including the
	// acceptance marker. Zero: 5s; allowed [100ms, 1m].
	HandshakeTimeout time.Duration
	// CertLifetime is the validity of this node's certificate. It is regenerated
	// on the next handshake once less than a third of it remains; no restart.
	// Zero: 1h; allowed [1m, 720h].
	CertLifetime time.Duration
	// MaxHeaderBytes limits the HTTP/2 header list a federation client may send
	// (SETTINGS_MAX_HEADER_LIST_SIZE, padded as net/http does for 10 fields).
	// Zero: 16 KiB; allowed [1 KiB, 1 MiB].
	MaxHeaderBytes int
	// MaxConcurrentStreams limits concurrent HTTP/2 requests per federation
	// connection. Zero: 256; allowed [1, 10000].
	MaxConcurrentStreams uint32
	// Now is the clock for certificate generation and validity checks.
	// Nil: time.Now.
	Now func() time.Time
	// Logger receives refusals (Warn) and connection events (Debug).
	// Nil: slog.Default().
	Logger *slog.Logger
	// OnRefused, if set, is called for every refused handshake on either side,
	// from the goroutine that ran it. It must not block. It is the audit seam.
	OnRefused func(HandshakeError)
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = defaultListen
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	if c.CertLifetime == 0 {
		c.CertLifetime = defaultCertLifetime
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = defaultMaxStreams
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if c.Identity.IsZero() {
		return errors.New("transport: Config.Identity is required")
	}
	if c.Peers == nil {
		return errors.New("transport: Config.Peers is required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("transport: Config.Listen %q is not HOST:PORT: %w", c.Listen, err)
	}
	if d := c.HandshakeTimeout; d < minHandshakeTimeout || d > maxHandshakeTimeout {
		return fmt.Errorf("transport: Config.HandshakeTimeout %v outside [%v, %v]", d, minHandshakeTimeout, maxHandshakeTimeout)
	}
	if d := c.CertLifetime; d < minCertLifetime || d > maxCertLifetime {
		return fmt.Errorf("transport: Config.CertLifetime %v outside [%v, %v]", d, minCertLifetime, maxCertLifetime)
	}
	if n := c.MaxHeaderBytes; n < minMaxHeaderBytes || n > maxMaxHeaderBytes {
		return fmt.Errorf("transport: Config.MaxHeaderBytes %d outside [%d, %d]", n, minMaxHeaderBytes, maxMaxHeaderBytes)
	}
	if n := c.MaxConcurrentStreams; n > maxMaxStreams {
		return fmt.Errorf("transport: Config.MaxConcurrentStreams %d outside [1, %d]", n, maxMaxStreams)
	}
	return nil
}

// Transport owns the node's TCP port, its certificate, the protocol listeners,
// the server-side handshakes and the pooled client connections. All methods
// are safe for concurrent use.
type Transport struct {
	cfg   Config
	self  identity.PublicKey
	certs *certSource
	log   *slog.Logger

	ctx    context.Context // done when Close is called
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop, handshakes, ServeHTTP connections
	sem    chan struct{}  // pending server handshakes

	mu        sync.Mutex
	closed    bool
	started   bool
	ln        net.Listener
	listeners map[string]*protoListener
	conns     map[trackedConn]struct{} // accepted server conns and pooled client conns
	serverTLS atomic.Pointer[tls.Config]

	handshakesIn  atomic.Uint64
	handshakesOut atomic.Uint64
	refused       atomic.Uint64
}

// trackedConn is a connection Close and Disconnect must be able to close.
type trackedConn interface {
	peerKey() identity.PublicKey
	Close() error
}

// New validates cfg, fills its defaults and makes the first certificate. The
// Transport does not listen until Start; it can Dial at once. ProtoFederation
// is registered from the start, so ServeHTTP may begin after Start.
func New(cfg Config) (*Transport, error) {
	cfg.fill()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:       cfg,
		self:      cfg.Identity.Public(),
		certs:     &certSource{key: cfg.Identity, lifetime: cfg.CertLifetime, now: cfg.Now},
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		sem:       make(chan struct{}, maxPendingHandshakes),
		listeners: make(map[string]*protoListener),
		conns:     make(map[trackedConn]struct{}),
	}
	if _, err := t.certs.get(); err != nil {
		cancel()
		return nil, err
	}
	t.Listener(ProtoFederation)
	return t, nil
}

// Self returns this node's public key.
func (t *Transport) Self() identity.PublicKey { return t.self }

// Start binds the TCP port and starts accepting connections; it returns once
// the port is bound. ctx bounds only the bind; the Transport runs until Close.
func (t *Transport) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("transport: start: %w", ErrClosed)
	}
	if t.started {
		return errors.New("transport: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", t.cfg.Listen)
	if err != nil {
		return fmt.Errorf("transport: listen on %s: %w", t.cfg.Listen, err)
	}
	t.ln, t.started = ln, true
	t.wg.Add(1)
	go t.acceptLoop(ln)
	t.log.Info("transport listening", "addr", ln.Addr().String(), "peer", t.self.Short())
	return nil
}

// Addr returns the bound address, or nil before Start.
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ln == nil {
		return nil
	}
	return t.ln.Addr()
}

// Stats counts handshakes since New.
type Stats struct {
	Handshakes    uint64 // completed and accepted handshakes, both sides (= Accepted + Dialed)
	Accepted      uint64 // server side
	Dialed        uint64 // client side (Dial, including the RoundTripper's dials)
	Refused       uint64 // refused handshakes, both sides (every *HandshakeError)
	CertRotations uint64 // certificates made after the first one
	Conns         int    // tracked open connections: accepted server conns and pooled client conns
}

// Stats returns a snapshot of the counters.
func (t *Transport) Stats() Stats {
	in, out := t.handshakesIn.Load(), t.handshakesOut.Load()
	t.mu.Lock()
	n := len(t.conns)
	t.mu.Unlock()
	return Stats{
		Handshakes:    in + out,
		Accepted:      in,
		Dialed:        out,
		Refused:       t.refused.Load(),
		CertRotations: t.certs.rotationCount(),
		Conns:         n,
	}
}

// Disconnect closes every tracked connection with peer (accepted server
// connections and pooled client connections) and returns how many it closed.
// Call it after revoking a peer: PeerSource refuses its new handshakes, this
// ends the ones already up. Connections returned by Dial belong to the caller.
func (t *Transport) Disconnect(peer identity.PublicKey) int {
	t.mu.Lock()
	var victims []trackedConn
	for c := range t.conns {
		if c.peerKey() == peer {
			victims = append(victims, c)
		}
	}
	t.mu.Unlock()
	for _, c := range victims {
		_ = c.Close() // Close untracks it
	}
	return len(victims)
}

// Close stops accepting, closes every protocol Listener, every accepted and
// pooled connection, and waits for the goroutines the Transport started
// (including ServeHTTP's connection goroutines, but not handlers still
// running). It is idempotent; later calls return nil.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	ln := t.ln
	ls := make([]*protoListener, 0, len(t.listeners))
	for _, l := range t.listeners {
		ls = append(ls, l)
	}
	conns := make([]trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()

	var err error
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("transport: close listener: %w", cerr)
		}
	}
	for _, l := range ls {
		l.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	t.wg.Wait()
	return err
}

// goTracked starts f as a goroutine Close waits for; false if already closed.
func (t *Transport) goTracked(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

func (t *Transport) track(c trackedConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c trackedConn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// refuse logs, counts and reports a refused handshake, then returns it.
func (t *Transport) refuse(he *HandshakeError) *HandshakeError {
	t.refused.Add(1)
	peer := ""
	if !he.Peer.IsZero() {
		peer = he.Peer.Short()
	}
	attrs := []any{"side", he.Side, "peer", peer, "addr", he.Addr, "reason", he.Reason.String(), "err", he.Err}
	if !he.Presented.IsZero() {
		attrs = append(attrs, "presented", he.Presented.Short())
	}
	t.log.Warn("transport: handshake refused", attrs...)
	if t.cfg.OnRefused != nil {
		t.cfg.OnRefused(*he)
	}
	return he
}

// deadline returns the earlier of now+d and ctx's deadline, and whether ctx's
// deadline was the one chosen.
func deadline(ctx context.Context, d time.Duration) (time.Time, bool) {
	dl := time.Now().Add(d)
	if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
		return cd, true
	}
	return dl, false
}
