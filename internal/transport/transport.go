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
// reason; rate-limited, see below), counted in Stats, passed to
// Config.OnRefused and returned as a *HandshakeError.
//
// Strangers and hostile peers are bounded before and after the handshake
// (every number is a Config field with a default):
//
//   - pending (unverified) server handshakes: MaxPendingHandshakes in all,
//     MaxPendingPerSource per source (IPv4 address, IPv6 /64), and
//     ReservedPending of them only for known sources (Config.KnownAddrs, and
//     sources that completed an admitted handshake in the last 24h), so a
//     flood of strangers cannot stop known peers from reconnecting;
//   - a connection must deliver a complete ClientHello within
//     ClientHelloTimeout (500ms), finish within HandshakeTimeout and send at
//     most 32 KiB doing so;
//   - established server connections: MaxConnsPerPeer per peer key and
//     protocol (a new one closes the oldest), per source and protocol for
//     keys admitted for one protocol only (ProtoAdmitter), and MaxConns in all;
//     MaxPendingHandshakes and MaxConns default to a share of RLIMIT_NOFILE
//     that leaves a reserve for backends and the audit store (see fdBudget);
//   - federation connections idle for IdleTimeout are closed;
//   - accept errors (EMFILE...) back off from 5ms to 1s;
//   - refusal log lines are rate-limited per (side, reason, source) with
//     count, first and last occurrence (internal/ratelog), accept errors to
//     one line per second.
//
// Limits: revocation affects new handshakes at once; connections that are
// already up stay up until Disconnect or Close. Clock checks use Config.Now;
// I/O deadlines use the real clock.
package transport

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/ratelog"
)

// ProtoFederation is the ALPN name of the federation API over HTTP/2 (see
// ServeHTTP and RoundTripper; ProtoFederation2 carries the same API in a
// leaner framing). Later protocols get their own names
// ("treaty-raft/1", "treaty-gossip/1", "treaty-bft/1") on the same port.
const ProtoFederation = "treaty/1"

// PeerSource decides which keys may finish a handshake with this node's server
// side. Admitted is called on every handshake, concurrently, so a revocation
// takes effect for the next connection at once; it must be fast and not block.
type PeerSource interface {
	Admitted(identity.PublicKey) bool
}

// ProtoAdmitter is an optional PeerSource that admits a key for one ALPN
// protocol only, for a protocol that strangers must be able to reach (a join
// presenting an invite). It is asked only for keys Admitted refuses; the same
// rules as Admitted apply. Keys it admits are free to make, so their
// connections count under MaxConnsPerPeer per source address, not per key,
// and their handshakes do not make a source known (ReservedPending).
type ProtoAdmitter interface {
	AdmittedFor(k identity.PublicKey, proto string) bool
}

func admittedFor(ps PeerSource, k identity.PublicKey, proto string) bool {
	pa, ok := ps.(ProtoAdmitter)
	return ok && pa.AdmittedFor(k, proto)
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

	defaultClientHelloTimeout = 500 * time.Millisecond
	minClientHelloTimeout     = 10 * time.Millisecond
	defaultPendingPerSource   = 16
	maxMaxPending             = 1 << 16
	defaultConnsPerPeer       = 4
	maxConnsPerPeer           = 1024
	maxMaxConns               = 1 << 20
	defaultIdleTimeout        = 5 * time.Minute
	minIdleTimeout            = 100 * time.Millisecond
	maxIdleTimeout            = 24 * time.Hour

	// refusalLogInterval: a refusal of one (side, reason, source) is logged
	// at once, then at most once per interval with its count.
	refusalLogInterval = 10 * time.Second
	refusalLogKeys     = 128
	// Accept errors back off like net/http's server and are logged at most
	// once a second.
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second

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
	// connection. Zero: 256; allowed [1, 10000]. On treaty/2 a stream the
	// caller reset stops counting at once, as in HTTP/2, and its handlers
	// (reset or not, until they return) are bounded at twice this: past it,
	// new streams are refused. Each stream's request body is buffered within
	// its window (128 KiB), so a connection buffers at most this many windows.
	MaxConcurrentStreams uint32
	// KnownAddrs, if set, marks the source addresses of known peers: they may
	// use the ReservedPending share of pending handshakes. Sources that
	// completed an admitted handshake in the last 24h count as known anyway.
	KnownAddrs AddrSource
	// ClientHelloTimeout is how long a new connection may take to deliver its
	// complete ClientHello; the rest of the handshake has the remainder of
	// HandshakeTimeout. Zero: 500ms; allowed [10ms, HandshakeTimeout].
	ClientHelloTimeout time.Duration
	// MaxPendingHandshakes bounds server handshakes in progress (before the
	// client is verified); beyond it new connections are closed at once
	// (ReasonOverload). Zero: derived from RLIMIT_NOFILE, 16 to 512 (512 from
	// about 5500 descriptors on); allowed [1, 65536].
	MaxPendingHandshakes int
	// MaxPendingPerSource bounds those from one IPv4 address or IPv6 /64
	// (ReasonSourceLimit). Zero: 16; allowed [1, MaxPendingHandshakes].
	MaxPendingPerSource int
	// ReservedPending of the MaxPendingHandshakes slots are only for known
	// sources (see KnownAddrs). Zero: a quarter; allowed [0, MaxPendingHandshakes).
	ReservedPending int
	// MaxConnsPerPeer bounds accepted connections per peer key and protocol;
	// a new one closes the oldest, so a restarted peer can always reconnect.
	// A pooled dialer needs one or two. Zero: 4; allowed [1, 1024].
	MaxConnsPerPeer int
	// MaxConns bounds accepted connections in all, pending handshakes
	// included (ReasonConnLimit). Zero: derived from RLIMIT_NOFILE, 16 to
	// 4096 (see fdBudget); allowed [1, 1048576].
	MaxConns int
	// IdleTimeout closes a federation (HTTP/2) connection with no request for
	// this long: the server after IdleTimeout, the client pool after half of
	// it (so the client, which knows when it is idle, usually closes first).
	// Zero: 5m; allowed [100ms, 24h].
	IdleTimeout time.Duration
	// DisableTreaty2 serves and dials the federation API over treaty/1
	// (HTTP/2) only. By default a node serves both and its RoundTripper
	// offers treaty/2 first (ADR 29).
	DisableTreaty2 bool
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
	if c.ClientHelloTimeout == 0 {
		c.ClientHelloTimeout = min(defaultClientHelloTimeout, c.HandshakeTimeout)
	}
	pending, conns := fdBudget(openFileLimit())
	if c.MaxPendingHandshakes == 0 {
		c.MaxPendingHandshakes = pending
	}
	if c.MaxPendingPerSource == 0 {
		c.MaxPendingPerSource = min(defaultPendingPerSource, c.MaxPendingHandshakes)
	}
	if c.ReservedPending == 0 {
		c.ReservedPending = c.MaxPendingHandshakes / 4
	}
	if c.MaxConnsPerPeer == 0 {
		c.MaxConnsPerPeer = defaultConnsPerPeer
	}
	if c.MaxConns == 0 {
		c.MaxConns = conns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
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
	if d := c.ClientHelloTimeout; d < minClientHelloTimeout || d > c.HandshakeTimeout {
		return fmt.Errorf("transport: Config.ClientHelloTimeout %v outside [%v, HandshakeTimeout %v]", d, minClientHelloTimeout, c.HandshakeTimeout)
	}
	if n := c.MaxPendingHandshakes; n < 1 || n > maxMaxPending {
		return fmt.Errorf("transport: Config.MaxPendingHandshakes %d outside [1, %d]", n, maxMaxPending)
	}
	if n := c.MaxPendingPerSource; n < 1 || n > c.MaxPendingHandshakes {
		return fmt.Errorf("transport: Config.MaxPendingPerSource %d outside [1, MaxPendingHandshakes %d]", n, c.MaxPendingHandshakes)
	}
	if n := c.ReservedPending; n < 0 || n >= c.MaxPendingHandshakes {
		return fmt.Errorf("transport: Config.ReservedPending %d outside [0, MaxPendingHandshakes %d)", n, c.MaxPendingHandshakes)
	}
	if n := c.MaxConnsPerPeer; n < 1 || n > maxConnsPerPeer {
		return fmt.Errorf("transport: Config.MaxConnsPerPeer %d outside [1, %d]", n, maxConnsPerPeer)
	}
	if n := c.MaxConns; n < 1 || n > maxMaxConns {
		return fmt.Errorf("transport: Config.MaxConns %d outside [1, %d]", n, maxMaxConns)
	}
	if d := c.IdleTimeout; d < minIdleTimeout || d > maxIdleTimeout {
		return fmt.Errorf("transport: Config.IdleTimeout %v outside [%v, %v]", d, minIdleTimeout, maxIdleTimeout)
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
	wg     sync.WaitGroup // accept loop, handshakes, ServeHTTP connections, log flusher
	adm    *admission     // pending server handshakes

	refusalLog *ratelog.Limiter // per (side, reason, source)
	acceptLog  *ratelog.Limiter // accept errors
	backoffMin time.Duration    // accept error backoff (fields so tests can shorten them)
	backoffMax time.Duration

	mu        sync.Mutex
	closed    bool
	started   bool
	ln        net.Listener
	listeners map[string]*protoListener
	conns     map[trackedConn]struct{}  // accepted server conns and pooled client conns
	byPeer    map[connKey][]*serverConn // accepted conns per key and protocol, oldest first
	protoCap  map[string]int            // MaxConnsPerPeer of a protocol with its own budgets (relay.go)
	accepted  int                       // accepted server conns, all keys
	serverTLS atomic.Pointer[tls.Config]

	handshakesIn  atomic.Uint64
	handshakesOut atomic.Uint64
	refused       atomic.Uint64
	byReason      [ReasonConnLimit + 1]atomic.Uint64
	evicted       atomic.Uint64
	acceptErrs    atomic.Uint64
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
	refusalLog, err := ratelog.New(ratelog.Config{Logger: cfg.Logger, Interval: refusalLogInterval, MaxKeys: refusalLogKeys})
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	acceptLog, err := ratelog.New(ratelog.Config{Logger: cfg.Logger, Interval: time.Second, MaxKeys: 1})
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:        cfg,
		self:       cfg.Identity.Public(),
		certs:      &certSource{key: cfg.Identity, lifetime: cfg.CertLifetime, now: cfg.Now},
		log:        cfg.Logger,
		ctx:        ctx,
		cancel:     cancel,
		adm:        newAdmission(cfg.MaxPendingHandshakes, cfg.ReservedPending, cfg.MaxPendingPerSource),
		refusalLog: refusalLog,
		acceptLog:  acceptLog,
		backoffMin: acceptBackoffMin,
		backoffMax: acceptBackoffMax,
		listeners:  make(map[string]*protoListener),
		conns:      make(map[trackedConn]struct{}),
		byPeer:     make(map[connKey][]*serverConn),
	}
	if _, err := t.certs.get(); err != nil {
		cancel()
		return nil, err
	}
	t.Listener(ProtoFederation)
	if !cfg.DisableTreaty2 {
		t.Listener(ProtoFederation2)
	}
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
	t.wg.Add(2)
	go t.acceptLoop(ln)
	go t.flushLogs()
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
	Handshakes    uint64            // completed and accepted handshakes, both sides (= Accepted + Dialed)
	Accepted      uint64            // server side
	Dialed        uint64            // client side (Dial, including the RoundTripper's dials)
	Refused       uint64            // refused handshakes, both sides (every *HandshakeError)
	ByReason      map[Reason]uint64 // Refused by reason; reasons never seen are absent
	Evicted       uint64            // accepted conns closed because their key and protocol exceeded MaxConnsPerPeer
	AcceptErrors  uint64            // failed accept calls (EMFILE...), each followed by a backoff
	CertRotations uint64            // certificates made after the first one
	Conns         int               // tracked open connections: accepted server conns and pooled client conns
	ServerConns   int               // of Conns, accepted server conns
	Pending       int               // server handshakes in progress
}

// Stats returns a snapshot of the counters.
func (t *Transport) Stats() Stats {
	in, out := t.handshakesIn.Load(), t.handshakesOut.Load()
	t.mu.Lock()
	n, accepted := len(t.conns), t.accepted
	t.mu.Unlock()
	by := make(map[Reason]uint64)
	for r := range t.byReason {
		if v := t.byReason[r].Load(); v > 0 {
			by[Reason(r)] = v
		}
	}
	return Stats{
		Handshakes:    in + out,
		Accepted:      in,
		Dialed:        out,
		Refused:       t.refused.Load(),
		ByReason:      by,
		Evicted:       t.evicted.Load(),
		AcceptErrors:  t.acceptErrs.Load(),
		CertRotations: t.certs.rotationCount(),
		Conns:         n,
		ServerConns:   accepted,
		Pending:       t.adm.pending(),
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
	t.refusalLog.Flush(context.Background(), true) // every count reaches the log
	t.acceptLog.Flush(context.Background(), true)
	return err
}

// flushLogs writes the counted refusal and accept-error lines once their
// interval has passed, even if no further event comes.
func (t *Transport) flushLogs() {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.refusalLog.Flush(t.ctx, false)
			t.acceptLog.Flush(t.ctx, false)
		case <-t.ctx.Done():
			return
		}
	}
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

// connKey groups accepted connections for MaxConnsPerPeer: per protocol, so
// that a peer redialing one protocol never closes its connection of another;
// per key for admitted peers, per source (peer zero) for keys admitted for
// one protocol only (ProtoAdmitter).
type connKey struct {
	peer  identity.PublicKey
	proto string
	src   netip.Prefix
}

// trackServer tracks an accepted connection under its key and protocol. If
// they then have more than MaxConnsPerPeer, it returns their oldest
// connection, which the caller closes: the newest proves the peer is there
// now, while an old one may be a leftover of a peer that restarted.
func (t *Transport) trackServer(c *serverConn) (ok bool, evict *serverConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, nil
	}
	t.conns[c] = struct{}{}
	t.accepted++
	k := c.group
	list := append(t.byPeer[k], c)
	if len(list) > cmp.Or(t.protoCap[c.proto], t.cfg.MaxConnsPerPeer) {
		evict, list = list[0], list[1:]
		t.forgetServerLocked(evict)
	}
	t.byPeer[k] = list
	return true, evict
}

// untrackServer forgets an accepted connection; it is idempotent.
func (t *Transport) untrackServer(c *serverConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[c]; ok {
		t.forgetServerLocked(c)
	}
}

func (t *Transport) forgetServerLocked(c *serverConn) {
	delete(t.conns, c)
	t.accepted--
	k := c.group
	list := t.byPeer[k]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.byPeer, k)
	} else {
		t.byPeer[k] = list
	}
}

func (t *Transport) serverConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accepted
}

// refuse logs (rate-limited per side, reason and source), counts and reports
// a refused handshake, then returns it.
func (t *Transport) refuse(he *HandshakeError) *HandshakeError {
	t.refused.Add(1)
	if r := int(he.Reason); r > 0 && r < len(t.byReason) {
		t.byReason[r].Add(1)
	}
	peer := ""
	if !he.Peer.IsZero() {
		peer = he.Peer.Short()
	}
	attrs := []any{"event", "handshake.refused", "side", he.Side, "peer", peer, "addr", he.Addr, "reason", he.Reason.String(), "err", he.Err}
	if !he.Presented.IsZero() {
		attrs = append(attrs, "presented", he.Presented.Short())
	}
	src := he.Addr
	if ap, err := netip.ParseAddrPort(he.Addr); err == nil {
		src = source(net.TCPAddrFromAddrPort(ap)).String()
	}
	t.refusalLog.Log(context.Background(), slog.LevelWarn, he.Side+"|"+he.Reason.String()+"|"+src, "transport: handshake refused", attrs...)
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
