package transport

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// TestRelayAnswerOnlyByTheTarget: circuit ids are sequential, so guessable.
// Another admitted key answering a circuit meant for the target is cut off
// without a byte of the caller's, and the circuit stays the target's, which
// still gets the caller's first bytes when it answers.
func TestRelayAnswerOnlyByTheTarget(t *testing.T) {
	t.Parallel()
	x := newRelayed(t, RelayConfig{})
	kf, km := testKey(t, 34), testKey(t, 35)
	x.relay.peers.set(kf.Public(), true)
	x.relay.peers.set(km.Public(), true)
	fake := newNode(t, kf, admit(), Config{})
	mallory := newNode(t, km, admit(), Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	relayKey := x.relay.Self()

	// A target the test drives by hand: it registers, then reads notices.
	reg, err := fake.Dial(ctx, x.relay.addr(), relayKey, ProtoRelay)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.Write([]byte{relayRegister}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "fake target registered", func() bool { return x.r.Registered(kf.Public()) })

	dialed := make(chan error, 1)
	go func() {
		c, err := x.caller.DialVia(ctx, x.relay.addr(), relayKey, kf.Public(), "echo/1")
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	_ = reg.SetReadDeadline(time.Now().Add(10 * time.Second))
	var id [8]byte
	if _, err := io.ReadFull(reg, id[:]); err != nil {
		t.Fatalf("notice: %v", err)
	}

	// mallory answers first, with the right id.
	hj, err := mallory.Dial(ctx, x.relay.addr(), relayKey, ProtoRelay)
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	if _, err := hj.Write(append([]byte{relayAnswer}, id[:]...)); err != nil {
		t.Fatal(err)
	}
	_ = hj.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, hj); n != 0 || err != nil {
		t.Fatalf("hijacker got %d bytes (err %v), want the connection closed with none", n, err)
	}

	// The target answers: the circuit is still there, and the caller's
	// ClientHello comes through.
	ans, err := fake.Dial(ctx, x.relay.addr(), relayKey, ProtoRelay)
	if err != nil {
		t.Fatal(err)
	}
	defer ans.Close()
	if _, err := ans.Write(append([]byte{relayAnswer}, id[:]...)); err != nil {
		t.Fatal(err)
	}
	_ = ans.SetReadDeadline(time.Now().Add(10 * time.Second))
	var rec [5]byte
	if _, err := io.ReadFull(ans, rec[:]); err != nil {
		t.Fatalf("target's answer got no caller bytes: %v", err)
	}
	if rec[0] != 0x16 || binary.BigEndian.Uint16(rec[1:3]) != 0x0301 {
		t.Fatalf("first caller bytes %x, want a TLS handshake record", rec)
	}
	cancel()
	<-dialed // cannot succeed: the test's target speaks no TLS
}

// TestRelayMaxDurationClosesCircuit: a circuit is closed MaxDuration after it
// was spliced, however busy it is.
func TestRelayMaxDurationClosesCircuit(t *testing.T) {
	t.Parallel()
	x := newRelayed(t, RelayConfig{MaxDuration: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := x.caller.DialVia(ctx, x.relay.addr(), x.relay.Self(), x.callee.Self(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(start.Add(8 * time.Second))
	for {
		if err := echo(t, c, "tick"); err != nil {
			break
		}
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("circuit closed after %v, want about MaxDuration (1s)", d)
	}
}
