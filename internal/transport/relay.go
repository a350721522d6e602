package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// ProtoRelay is the ALPN protocol of relays: a node that accepts no inbound
// connections registers with a relay over an outbound connection, and callers
// reach it through the relay. The TLS session between caller and callee runs
// inside the relay connections, end to end: the relay forwards ciphertext and
// learns only who talks to whom, when, and how much.
const ProtoRelay = "treaty-relay/1"

// Relay commands: the first byte a client sends on a relay connection.
const (
	relayRegister = 'R' // callee: keep this connection open for notices
	relayConnect  = 'C' // caller: + 32-byte target key
	relayAnswer   = 'A' // callee: + 8-byte circuit id, answering a notice
)

// Relay status bytes, sent to a caller after relayConnect.
const (
	relayOK          = 0
	relayNotHere     = 1 // the target is not registered here
	relayOverBudget  = 2 // a budget refused the circuit
	relayNoAnswer    = 3 // the target did not answer in time
	relayAnswerLimit = 5 * time.Second
)

// Route says how to reach a peer: directly at Addr, or, when Relay is set,
// through the relay with key Relay listening at Addr.
type Route struct {
	Addr  string
	Relay identity.PublicKey
}

// Router finds the route to a peer (RoutedRoundTripper).
type Router func(ctx context.Context, peer identity.PublicKey) (Route, error)

// ErrRelayRefused is returned (wrapped) by DialVia when the relay refused or
// could not complete the circuit.
var ErrRelayRefused = errors.New("transport: relay refused the circuit")

// RelayConfig bounds what a relay spends on others. A zero field takes the
// default noted on it.
type RelayConfig struct {
	// MaxRegistrations bounds registered callees. Zero: 64.
	MaxRegistrations int
	// MaxCircuits bounds open circuits in all. Zero: 256.
	MaxCircuits int
	// MaxCircuitsPerPeer bounds open circuits per caller key and per callee
	// key. Zero: 8.
	MaxCircuitsPerPeer int
	// MaxBytes bounds the bytes one circuit may carry, both directions
	// together; the circuit is closed when it is reached. Zero: 64 MiB.
	MaxBytes int64
	// MaxDuration closes a circuit after this long. Zero: 1h.
	MaxDuration time.Duration
	// Tap, if set, sees every byte the relay forwards (tests prove with it
	// that the relay never sees plaintext). Leave it nil.
	Tap func(b []byte)
}

func (c *RelayConfig) fill() {
	if c.MaxRegistrations <= 0 {
		c.MaxRegistrations = 64
	}
	if c.MaxCircuits <= 0 {
		c.MaxCircuits = 256
	}
	if c.MaxCircuitsPerPeer <= 0 {
		c.MaxCircuitsPerPeer = 8
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 64 << 20
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = time.Hour
	}
}

// Relay forwards circuits between callers and registered callees on one
// Transport. Who may use it is the Transport's PeerSource: only admitted keys
// finish the handshake.
type Relay struct {
	t   *Transport
	cfg RelayConfig
	ln  net.Listener

	mu      sync.Mutex
	regs    map[identity.PublicKey]*registration
	waiting map[uint64]waiter // circuit id → the caller's side waiting for the answer
	open    int
	perPeer map[identity.PublicKey]int
	nextID  uint64

	forwarded atomic.Int64
	wg        sync.WaitGroup
}

// waiter is a circuit waiting for its callee to answer.
type waiter struct {
	target identity.PublicKey // only this key may answer
	ch     chan net.Conn
}

type registration struct {
	c  net.Conn
	mu sync.Mutex // serialises notices
}

// NewRelay makes t a relay. Register ProtoRelay before t.Start (this does).
func NewRelay(t *Transport, cfg RelayConfig) *Relay {
	cfg.fill()
	return &Relay{t: t, cfg: cfg, ln: t.Listener(ProtoRelay),
		regs: map[identity.PublicKey]*registration{}, waiting: map[uint64]waiter{},
		perPeer: map[identity.PublicKey]int{}}
}

// Registered reports whether key is registered here now.
func (r *Relay) Registered(key identity.PublicKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.regs[key]
	return ok
}

// Forwarded returns the bytes the relay has forwarded in all.
func (r *Relay) Forwarded() int64 { return r.forwarded.Load() }

// Serve runs the relay until ctx is done or the listener closes.
func (r *Relay) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = r.ln.Close() })
	defer stop()
	defer r.wg.Wait()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.handle(ctx, c)
		}()
	}
}

func (r *Relay) handle(ctx context.Context, c net.Conn) {
	peer, _ := PeerFromConn(c)
	_ = c.SetReadDeadline(time.Now().Add(r.t.cfg.HandshakeTimeout))
	var cmd [1]byte
	if _, err := io.ReadFull(c, cmd[:]); err != nil {
		_ = c.Close()
		return
	}
	switch cmd[0] {
	case relayRegister:
		r.register(ctx, peer, c)
	case relayConnect:
		var k [32]byte
		if _, err := io.ReadFull(c, k[:]); err != nil {
			_ = c.Close()
			return
		}
		target, err := identity.PublicKeyFromEd25519(k[:])
		if err != nil {
			_ = c.Close()
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		r.connect(ctx, peer, target, c)
	case relayAnswer:
		var id [8]byte
		if _, err := io.ReadFull(c, id[:]); err != nil {
			_ = c.Close()
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		n := binary.BigEndian.Uint64(id[:])
		r.mu.Lock()
		w, ok := r.waiting[n]
		if ok && w.target.Equal(peer) {
			delete(r.waiting, n)
		}
		r.mu.Unlock()
		if !ok || !w.target.Equal(peer) {
			_ = c.Close() // unknown circuit, or another key trying to take it
			return
		}
		w.ch <- c // buffered: the caller's side takes it or closes it
	default:
		_ = c.Close()
	}
}

// register keeps a callee's notice connection until it closes.
func (r *Relay) register(ctx context.Context, peer identity.PublicKey, c net.Conn) {
	r.mu.Lock()
	if old, ok := r.regs[peer]; ok {
		_ = old.c.Close() // a re-registration replaces the old one
	} else if len(r.regs) >= r.cfg.MaxRegistrations {
		r.mu.Unlock()
		_ = c.Close()
		return
	}
	reg := &registration{c: c}
	r.regs[peer] = reg
	r.mu.Unlock()
	_ = c.SetReadDeadline(time.Time{})
	// The callee sends nothing more; a read returns when it goes away.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	_, _ = io.Copy(io.Discard, c)
	stop()
	_ = c.Close()
	r.mu.Lock()
	if r.regs[peer] == reg {
		delete(r.regs, peer)
	}
	r.mu.Unlock()
}

func (r *Relay) take(caller, target identity.PublicKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open >= r.cfg.MaxCircuits || r.perPeer[caller] >= r.cfg.MaxCircuitsPerPeer ||
		r.perPeer[target] >= r.cfg.MaxCircuitsPerPeer {
		return false
	}
	r.open++
	r.perPeer[caller]++
	r.perPeer[target]++
	return true
}

func (r *Relay) give(caller, target identity.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open--
	for _, k := range []identity.PublicKey{caller, target} {
		if r.perPeer[k]--; r.perPeer[k] <= 0 {
			delete(r.perPeer, k)
		}
	}
}

// connect asks the target for an answering connection and splices the two.
func (r *Relay) connect(ctx context.Context, caller, target identity.PublicKey, c net.Conn) {
	defer c.Close()
	r.mu.Lock()
	reg := r.regs[target]
	r.nextID++
	id := r.nextID
	r.mu.Unlock()
	if reg == nil {
		_, _ = c.Write([]byte{relayNotHere})
		return
	}
	if !r.take(caller, target) {
		_, _ = c.Write([]byte{relayOverBudget})
		return
	}
	defer r.give(caller, target)
	ch := make(chan net.Conn, 1)
	r.mu.Lock()
	r.waiting[id] = waiter{target: target, ch: ch}
	r.mu.Unlock()
	var notice [8]byte
	binary.BigEndian.PutUint64(notice[:], id)
	reg.mu.Lock()
	_ = reg.c.SetWriteDeadline(time.Now().Add(r.t.cfg.HandshakeTimeout))
	_, err := reg.c.Write(notice[:])
	reg.mu.Unlock()
	var answer net.Conn
	if err == nil {
		timer := time.NewTimer(relayAnswerLimit)
		select {
		case answer = <-ch:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
	r.mu.Lock()
	delete(r.waiting, id)
	r.mu.Unlock()
	if answer == nil {
		select { // an answer that raced the timeout
		case answer = <-ch:
		default:
		}
	}
	if answer == nil {
		_, _ = c.Write([]byte{relayNoAnswer})
		return
	}
	defer answer.Close()
	if _, err := c.Write([]byte{relayOK}); err != nil {
		return
	}
	r.splice(ctx, c, answer)
}

// splice copies both ways until either side ends, the byte budget is spent or
// MaxDuration passes.
func (r *Relay) splice(ctx context.Context, a, b net.Conn) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.MaxDuration)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = a.Close(); _ = b.Close() })
	defer stop()
	var left atomic.Int64
	left.Store(r.cfg.MaxBytes)
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		defer cancel()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if left.Add(-int64(n)) < 0 {
					return
				}
				if r.cfg.Tap != nil {
					r.cfg.Tap(buf[:n])
				}
				r.forwarded.Add(int64(n))
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
}

// DialVia connects to want through the relay at relayAddr (pinned to
// relayKey) and returns a TLS connection speaking proto with want, end to
// end: the relay only forwards its ciphertext. Refusals by want come back as
// *HandshakeError, refusals by the relay wrap ErrRelayRefused.
func (t *Transport) DialVia(ctx context.Context, relayAddr string, relayKey, want identity.PublicKey, proto string) (*tls.Conn, error) {
	if err := checkProto(proto); err != nil {
		return nil, fmt.Errorf("transport: dial via relay: %w", err)
	}
	outer, err := t.Dial(ctx, relayAddr, relayKey, ProtoRelay)
	if err != nil {
		return nil, err
	}
	dl, _ := deadline(ctx, t.cfg.HandshakeTimeout+relayAnswerLimit)
	_ = outer.SetDeadline(dl)
	if _, err := outer.Write(append([]byte{relayConnect}, want.Bytes()...)); err != nil {
		_ = outer.Close()
		return nil, fmt.Errorf("transport: dial via relay: %w", err)
	}
	var st [1]byte
	if _, err := io.ReadFull(outer, st[:]); err != nil || st[0] != relayOK {
		_ = outer.Close()
		return nil, fmt.Errorf("transport: dial %s via relay %s: %w (status %d, %v)", want.Short(), relayKey.Short(), ErrRelayRefused, st[0], err)
	}
	tc := tls.Client(outer, t.clientConfig(want, proto))
	err = tc.HandshakeContext(ctx)
	if err == nil {
		err = readAcceptMarker(tc)
	}
	if err != nil {
		_ = outer.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("transport: dial via relay: %w", ctx.Err())
		}
		he := classify(sideClient, "relay:"+relayAddr, err)
		he.Peer = want
		return nil, t.refuse(he)
	}
	_ = outer.SetDeadline(time.Time{})
	t.handshakesOut.Add(1)
	return tc, nil
}

// RegisterWith keeps this node registered with the relay at relayAddr until
// ctx is done, re-registering after a failure (1 s, then up to 30 s apart).
// Callers that come through the relay are handshaken here exactly as direct
// callers are (PeerSource, limits) and delivered to the protocol listeners.
func (t *Transport) RegisterWith(ctx context.Context, relayAddr string, relayKey identity.PublicKey) {
	backoff := time.Second
	for ctx.Err() == nil && t.ctx.Err() == nil {
		err := t.serveRelay(ctx, relayAddr, relayKey)
		if ctx.Err() != nil || t.ctx.Err() != nil {
			return
		}
		t.log.Debug("transport: relay registration ended", "relay", relayKey.Short(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-t.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (t *Transport) serveRelay(ctx context.Context, relayAddr string, relayKey identity.PublicKey) error {
	ctl, err := t.Dial(ctx, relayAddr, relayKey, ProtoRelay)
	if err != nil {
		return err
	}
	defer ctl.Close()
	stop := context.AfterFunc(ctx, func() { _ = ctl.Close() })
	defer stop()
	if _, err := ctl.Write([]byte{relayRegister}); err != nil {
		return err
	}
	src := source(ctl.RemoteAddr())
	for {
		var id [8]byte
		if _, err := io.ReadFull(ctl, id[:]); err != nil {
			return err
		}
		go t.answerRelay(ctx, relayAddr, relayKey, id, src)
	}
}

// answerRelay opens the callee side of one circuit and runs the server
// handshake over it, as for a direct connection from the relay's address.
func (t *Transport) answerRelay(ctx context.Context, relayAddr string, relayKey identity.PublicKey, id [8]byte, src netip.Prefix) {
	c, err := t.Dial(ctx, relayAddr, relayKey, ProtoRelay)
	if err != nil {
		return
	}
	if _, err := c.Write(append([]byte{relayAnswer}, id[:]...)); err != nil {
		_ = c.Close()
		return
	}
	if _, err := t.adm.enter(src, true, time.Now()); err != nil {
		_ = c.Close()
		return
	}
	if !t.goTracked(func() { t.serverHandshake(c, src) }) {
		t.adm.leave(src)
		_ = c.Close()
	}
}
