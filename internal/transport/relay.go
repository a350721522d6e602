package transport

import (
	"cmp"
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
	"github.com/treaty-dev/treaty/internal/refusal"
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
	relayOverBudget  = 2 // MaxCircuits refused the circuit
	relayNoAnswer    = 3 // the target did not answer in time
	relayOverPeer    = 4 // MaxCircuitsPerPeer refused it (caller's or target's)
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
// could not complete the circuit; the error in the chain is a *RelayError.
var ErrRelayRefused = errors.New("transport: relay refused the circuit")

// RelayReason says why a relay did not complete a circuit.
type RelayReason string

const (
	RelayNotRegistered   RelayReason = "not_registered"    // the target is not registered with the relay
	RelayOverCircuits    RelayReason = "over_max_circuits" // the relay's MaxCircuits are open
	RelayOverPeerBudget  RelayReason = "over_max_circuits_per_peer"
	RelayNoAnswer        RelayReason = "no_answer"        // the target did not answer the notice in time
	RelayProtocolFailure RelayReason = "protocol_failure" // the relay closed or sent an unknown status
)

// RelayError is a circuit the relay refused or could not complete. Its stage
// is always refusal.StageTransport: the call never reached the target. It
// unwraps to ErrRelayRefused.
type RelayError struct {
	Relay, Target identity.PublicKey
	Reason        RelayReason
	Err           error // the read that failed, for RelayProtocolFailure
}

func (e *RelayError) Error() string {
	msg := fmt.Sprintf("transport: relay %s refused the circuit to %s: %s", e.Relay.Short(), e.Target.Short(), e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *RelayError) Unwrap() error { return ErrRelayRefused }

// Stage names the call-path stage of the refusal (refusal.StageTransport).
func (e *RelayError) Stage() refusal.Stage { return refusal.StageTransport }

func relayReason(status byte) RelayReason {
	switch status {
	case relayNotHere:
		return RelayNotRegistered
	case relayOverBudget:
		return RelayOverCircuits
	case relayOverPeer:
		return RelayOverPeerBudget
	case relayNoAnswer:
		return RelayNoAnswer
	}
	return RelayProtocolFailure
}

// RelayConfig bounds what a relay spends on others. A zero field takes the
// default noted on it (DefaultRelayConfig); NewRelay refuses values outside
// the bounds noted.
type RelayConfig struct {
	// MaxRegistrations bounds registered callees. Zero: 64; [1, 4096].
	MaxRegistrations int
	// MaxCircuits bounds open circuits in all. Zero: 256; [1, 65536].
	MaxCircuits int
	// MaxCircuitsPerPeer bounds open circuits per caller key and per callee
	// key; one caller may hold at most half of a callee's (at least one), so
	// it cannot take them all. Zero: 8 (MaxCircuits if lower); [1, MaxCircuits].
	MaxCircuitsPerPeer int
	// MaxBytes bounds the bytes one circuit may carry, both directions
	// together; the circuit is closed when it is reached. Zero: 64 MiB;
	// [64 KiB, 1 TiB].
	MaxBytes int64
	// BytesPerSecond paces each direction of each circuit, with a burst of
	// one second's worth. Zero: 8 MiB/s; [1 KiB/s, 1 GiB/s].
	BytesPerSecond int64
	// MaxDuration closes a circuit after this long. Zero: 1h; [1s, 24h].
	MaxDuration time.Duration
	// Tap, if set, sees every byte the relay forwards (tests prove with it
	// that the relay never sees plaintext). Leave it nil.
	Tap func(b []byte)
}

// DefaultRelayConfig returns the budgets a zero RelayConfig gets.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{MaxRegistrations: 64, MaxCircuits: 256, MaxCircuitsPerPeer: 8,
		MaxBytes: 64 << 20, BytesPerSecond: 8 << 20, MaxDuration: time.Hour}
}

func (c *RelayConfig) fill() {
	d := DefaultRelayConfig()
	c.MaxRegistrations = cmp.Or(c.MaxRegistrations, d.MaxRegistrations)
	c.MaxCircuits = cmp.Or(c.MaxCircuits, d.MaxCircuits)
	c.MaxCircuitsPerPeer = cmp.Or(c.MaxCircuitsPerPeer, min(d.MaxCircuitsPerPeer, max(c.MaxCircuits, 1)))
	c.MaxBytes = cmp.Or(c.MaxBytes, d.MaxBytes)
	c.BytesPerSecond = cmp.Or(c.BytesPerSecond, d.BytesPerSecond)
	c.MaxDuration = cmp.Or(c.MaxDuration, d.MaxDuration)
}

// check names the first field out of its bounds.
func (c *RelayConfig) check() error {
	ints := []struct {
		name     string
		v        int64
		min, max int64
	}{
		{"MaxRegistrations", int64(c.MaxRegistrations), 1, 4096},
		{"MaxCircuits", int64(c.MaxCircuits), 1, 65536},
		{"MaxCircuitsPerPeer", int64(c.MaxCircuitsPerPeer), 1, int64(c.MaxCircuits)},
		{"MaxBytes", c.MaxBytes, 64 << 10, 1 << 40},
		{"BytesPerSecond", c.BytesPerSecond, 1 << 10, 1 << 30},
		{"MaxDuration", int64(c.MaxDuration), int64(time.Second), int64(24 * time.Hour)},
	}
	for _, f := range ints {
		if f.v < f.min || f.v > f.max {
			if f.name == "MaxDuration" {
				return fmt.Errorf("transport: RelayConfig.MaxDuration %v outside [1s, 24h]", c.MaxDuration)
			}
			return fmt.Errorf("transport: RelayConfig.%s %d outside [%d, %d]", f.name, f.v, f.min, f.max)
		}
	}
	return nil
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
	perPair map[[2]identity.PublicKey]int // caller, target
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

// NewRelay makes t a relay, after checking cfg (the error names the field).
// It registers ProtoRelay, so call it before t.Start.
func NewRelay(t *Transport, cfg RelayConfig) (*Relay, error) {
	cfg.fill()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	// A key's relay connections are its registration, one per circuit it is
	// in (as caller or as callee, at most MaxCircuitsPerPeer) and one in
	// passing (a re-registration, or a connect about to be refused): under
	// MaxConnsPerPeer alone, the fifth would close the oldest, its
	// registration, and cut it off from every caller.
	t.mu.Lock()
	if t.protoCap == nil {
		t.protoCap = map[string]int{}
	}
	t.protoCap[ProtoRelay] = max(t.cfg.MaxConnsPerPeer, cfg.MaxCircuitsPerPeer+2)
	t.mu.Unlock()
	return &Relay{t: t, cfg: cfg, ln: t.Listener(ProtoRelay),
		regs: map[identity.PublicKey]*registration{}, waiting: map[uint64]waiter{},
		perPeer: map[identity.PublicKey]int{}, perPair: map[[2]identity.PublicKey]int{}}, nil
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
			// Handed over under the lock (the channel has room for one and
			// one sender), so a caller's side that gives up takes the lock
			// after this and finds the answer to close.
			w.ch <- c
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		_ = c.Close() // unknown circuit, or another key trying to take it
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
	// The callee sends nothing more: a read returns when it goes away, and
	// a byte it sends (which no budget covers) ends the registration too.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	_, _ = c.Read(make([]byte, 1))
	stop()
	_ = c.Close()
	r.mu.Lock()
	if r.regs[peer] == reg {
		delete(r.regs, peer)
	}
	r.mu.Unlock()
}

// take opens a circuit in the budgets, or returns the status refusing it.
func (r *Relay) take(caller, target identity.PublicKey) byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open >= r.cfg.MaxCircuits {
		return relayOverBudget
	}
	pair := [2]identity.PublicKey{caller, target}
	if r.perPeer[caller] >= r.cfg.MaxCircuitsPerPeer || r.perPeer[target] >= r.cfg.MaxCircuitsPerPeer ||
		r.perPair[pair] >= max(1, r.cfg.MaxCircuitsPerPeer/2) {
		return relayOverPeer
	}
	r.open++
	r.perPeer[caller]++
	r.perPeer[target]++
	r.perPair[pair]++
	return relayOK
}

func (r *Relay) give(caller, target identity.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open--
	pair := [2]identity.PublicKey{caller, target}
	if r.perPair[pair]--; r.perPair[pair] <= 0 {
		delete(r.perPair, pair)
	}
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
	if st := r.take(caller, target); st != relayOK {
		r.t.log.Debug("transport: relay refused a circuit", "caller", caller.Short(), "target", target.Short(), "reason", relayReason(st))
		_, _ = c.Write([]byte{st})
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
		pace := newPacer(r.cfg.BytesPerSecond, time.Now())
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if left.Add(-int64(n)) < 0 {
					return
				}
				if !pace.wait(ctx, n) {
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

// pacer holds one direction of a circuit to rate bytes a second, with a
// burst of one second's worth (a token bucket).
type pacer struct {
	rate   float64
	tokens float64
	last   time.Time
}

func newPacer(rate int64, now time.Time) *pacer {
	return &pacer{rate: float64(rate), tokens: float64(rate), last: now}
}

// wait spends n bytes, sleeping while the bucket is in debt; false if ctx
// ended first.
func (p *pacer) wait(ctx context.Context, n int) bool {
	now := time.Now()
	p.tokens = min(p.rate, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	p.last = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return true
	}
	t := time.NewTimer(time.Duration(-p.tokens / p.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// DialVia connects to want through the relay at relayAddr (pinned to
// relayKey) and returns a TLS connection speaking proto with want, end to
// end: the relay only forwards its ciphertext. Refusals by want come back as
// *HandshakeError, refusals by the relay as *RelayError (ErrRelayRefused).
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
		re := &RelayError{Relay: relayKey, Target: want, Reason: relayReason(st[0]), Err: err}
		if err != nil {
			re.Reason = RelayProtocolFailure
		}
		return nil, re
	}
	tc, err := clientHandshake(ctx, outer, t.clientConfig(want, proto))
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
// The pending slot is taken before the dial: a relay flooding notices gets
// at most MaxPendingPerSource answers in progress, not a dial per notice.
func (t *Transport) answerRelay(ctx context.Context, relayAddr string, relayKey identity.PublicKey, id [8]byte, src netip.Prefix) {
	if _, err := t.adm.enter(src, true, time.Now()); err != nil {
		return
	}
	c, err := t.Dial(ctx, relayAddr, relayKey, ProtoRelay)
	if err != nil {
		t.adm.leave(src)
		return
	}
	if _, err := c.Write(append([]byte{relayAnswer}, id[:]...)); err != nil {
		t.adm.leave(src)
		_ = c.Close()
		return
	}
	if !t.goTracked(func() { t.serverHandshake(c, src) }) {
		t.adm.leave(src)
		_ = c.Close()
	}
}
