package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/refusal"
)

// relayed is a relay, a callee that listens on nothing (it only registers
// with the relay over an outbound connection) and a caller.
type relayed struct {
	relay  *node
	r      *Relay
	callee *Transport
	caller *node
	mu     sync.Mutex
	tapped bytes.Buffer
}

func newRelayed(t *testing.T, cfg RelayConfig) *relayed {
	t.Helper()
	kr, kc, kk := testKey(t, 31), testKey(t, 32), testKey(t, 33)
	peers := admit(kr.Public(), kc.Public(), kk.Public())
	x := &relayed{}
	cfg.Tap = func(b []byte) {
		x.mu.Lock()
		x.tapped.Write(b)
		x.mu.Unlock()
	}
	x.relay = newNode(t, kr, peers, Config{})
	r, err := NewRelay(x.relay.Transport, cfg)
	if err != nil {
		t.Fatal(err)
	}
	x.r = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = x.r.Serve(ctx)
	}()
	// The callee is never started: it has no listening socket at all.
	callee, err := New(Config{Identity: kk, Peers: peers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	x.callee = callee
	serveEcho(t, &node{Transport: callee}, "echo/1")
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		callee.RegisterWith(ctx, x.relay.addr(), kr.Public())
	}()
	x.caller = newNode(t, kc, peers, Config{})
	t.Cleanup(func() {
		cancel()
		_ = callee.Close()
		<-regDone
		<-done
	})
	waitFor(t, "callee registered", func() bool { return x.r.Registered(kk.Public()) })
	return x
}

func TestRelayCarriesEndToEndTLSAndNeverSeesPlaintext(t *testing.T) {
	x := newRelayed(t, RelayConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	secret := "PLAINTEXT-MARKER-the relay must never read this"
	for range 3 {
		if err := echo(t, c, secret); err != nil {
			t.Fatal(err)
		}
	}
	x.mu.Lock()
	tapped := x.tapped.Bytes()
	x.mu.Unlock()
	if len(tapped) < 3*len(secret) || x.r.Forwarded() < int64(len(tapped)) {
		t.Fatalf("relay forwarded %d bytes (tap %d): the echo did not go through it", x.r.Forwarded(), len(tapped))
	}
	if bytes.Contains(tapped, []byte("PLAINTEXT-MARKER")) {
		t.Fatal("the relay saw plaintext")
	}
	// The session is with the callee's key, end to end.
	if got := c.ConnectionState().PeerCertificates; len(got) != 1 {
		t.Fatalf("peer certificates: %d", len(got))
	} else if k, _ := keyOf(got); !k.Equal(x.callee.Self()) {
		t.Fatalf("end-to-end peer is %s, want the callee", k.Short())
	}
}

// relayRefusal asserts err is the relay's typed refusal for reason, in the
// transport stage.
func relayRefusal(t *testing.T, err error, reason RelayReason) {
	t.Helper()
	var re *RelayError
	if !errors.As(err, &re) || !errors.Is(err, ErrRelayRefused) {
		t.Fatalf("got %v, want a *RelayError", err)
	}
	if re.Reason != reason || re.Stage() != refusal.StageTransport {
		t.Fatalf("relay refusal %q in stage %q, want %q in %q", re.Reason, re.Stage(), reason, refusal.StageTransport)
	}
}

func TestRelayRefusals(t *testing.T) {
	x := newRelayed(t, RelayConfig{MaxCircuitsPerPeer: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A target that is not registered.
	_, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), testKey(t, 99).Public(), "echo/1")
	relayRefusal(t, err, RelayNotRegistered)
	// The relay is pinned: a wrong relay key is refused at the handshake.
	if _, err := x.caller.DialVia(ctx, x.relay.addr(), x.caller.Self(), x.callee.Self(), "echo/1"); handshakeErr(t, err).Reason != ReasonWrongKey {
		t.Fatalf("wrong relay key: %v", err)
	}
	c1, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if err := echo(t, c1, "one"); err != nil {
		t.Fatal(err)
	}
	// Budget: one circuit per peer.
	_, err = x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	relayRefusal(t, err, RelayOverPeerBudget)
	c1.Close()
	waitFor(t, "circuit released", func() bool {
		c2, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
		if err != nil {
			return false
		}
		defer c2.Close()
		return echo(t, c2, "two") == nil
	})
}

func TestRelayMaxCircuitsRefusesOverBudget(t *testing.T) {
	x := newRelayed(t, RelayConfig{MaxCircuits: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c1, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	_, err = x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	relayRefusal(t, err, RelayOverCircuits)
}

func TestNewRelayNamesTheWrongField(t *testing.T) {
	tr := newNode(t, testKey(t, 41), admit(), Config{})
	for field, cfg := range map[string]RelayConfig{
		"MaxRegistrations":   {MaxRegistrations: 5000},
		"MaxCircuits":        {MaxCircuits: -1},
		"MaxCircuitsPerPeer": {MaxCircuits: 4, MaxCircuitsPerPeer: 5},
		"MaxBytes":           {MaxBytes: 1024},
		"BytesPerSecond":     {BytesPerSecond: 10},
		"MaxDuration":        {MaxDuration: 48 * time.Hour},
	} {
		if _, err := NewRelay(tr.Transport, cfg); err == nil || !strings.Contains(err.Error(), "RelayConfig."+field) {
			t.Errorf("%s: got %v, want an error naming it", field, err)
		}
	}
}

// TestRelayPacesCircuits: bytes_per_second holds each direction of a circuit
// to its rate after the one-second burst.
func TestRelayPacesCircuits(t *testing.T) {
	const rate = 64 << 10
	x := newRelayed(t, RelayConfig{BytesPerSecond: rate})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	chunk := bytes.Repeat([]byte{'p'}, 8<<10)
	for range 3 * rate / len(chunk) { // the burst plus two seconds' worth
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, len(chunk))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("%d KiB each way at %d KiB/s took %v: not paced", 3*rate>>10, rate>>10, d)
	}
}

func TestRelayByteBudgetClosesCircuit(t *testing.T) {
	x := newRelayed(t, RelayConfig{MaxBytes: 64 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	chunk := bytes.Repeat([]byte{'x'}, 1024)
	for i := range 512 {
		if _, err := c.Write(chunk); err != nil {
			return // closed by the budget
		}
		if _, err := io.ReadFull(c, make([]byte, len(chunk))); err != nil {
			if i == 0 {
				t.Fatalf("first echo failed: %v", err)
			}
			return
		}
	}
	t.Fatal("512 KiB went through a 64 KiB circuit budget")
}

// TestRelayCircuitsWithinBudgetKeepRegistration: the relay's own budgets, not
// the transport's MaxConnsPerPeer (4 by default), bound a key's relay
// connections. Each circuit to a callee is one more connection from it (its
// answer) beside its registration, and each circuit from a caller one more
// from the caller: circuits within max_circuits_per_peer must neither evict
// the callee's registration (cutting it off for everyone) nor the caller's
// earlier circuits.
func TestRelayCircuitsWithinBudgetKeepRegistration(t *testing.T) {
	// Within the default MaxCircuitsPerPeer (8); with the registration, above
	// MaxConnsPerPeer (4). Not above 4: the callee itself keeps 4 connections
	// per caller key and protocol, relayed or not.
	const n = 4
	x := newRelayed(t, RelayConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			_ = c.Close()
		}
	}()
	for i := range n {
		c, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
		if err != nil {
			t.Fatalf("circuit %d: %v", i, err)
		}
		cs = append(cs, c)
	}
	for i, c := range cs {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := echo(t, c, "still here"); err != nil {
			t.Fatalf("circuit %d of %d was closed: %v", i, n, err)
		}
	}
	if !x.r.Registered(x.callee.Self()) {
		t.Fatal("the callee's registration was evicted by its own answers")
	}
}

// TestRelayOneCallerCannotTakeACalleesCircuits: a caller may hold at most half
// of a callee's circuits (max_circuits_per_peer/2, at least 1), so that one
// member holding its circuits open cannot make the callee unreachable
// through the relay for every other caller.
func TestRelayOneCallerCannotTakeACalleesCircuits(t *testing.T) {
	x := newRelayed(t, RelayConfig{MaxCircuitsPerPeer: 2})
	kb := testKey(t, 34)
	x.caller.peers.set(kb.Public(), true)
	other := newNode(t, kb, x.caller.peers, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c1, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if c2, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1"); err == nil {
		c2.Close()
		t.Fatal("one caller took both of the callee's circuits")
	} else {
		relayRefusal(t, err, RelayOverPeerBudget)
	}
	c3, err := other.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatalf("another caller: %v", err)
	}
	defer c3.Close()
	if err := echo(t, c3, "another caller"); err != nil {
		t.Fatal(err)
	}
}
