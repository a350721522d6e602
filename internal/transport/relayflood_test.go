package transport

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRelayNoticeFloodIsBounded: a callee answers each notice of its relay by
// dialing the relay. A hostile relay that floods notices and never finishes
// the answering handshakes must not make the callee hold a connection (and a
// goroutine) per notice: answers in progress are bounded by the pending
// handshake slots of the relay's source (MaxPendingPerSource).
func TestRelayNoticeFloodIsBounded(t *testing.T) {
	const notices, perSource = 200, 4
	kr, kk := testKey(t, 51), testKey(t, 52)
	peers := admit(kr.Public(), kk.Public())
	relay := newNode(t, kr, peers, Config{})
	ln := relay.Listener(ProtoRelay)
	t.Cleanup(func() { _ = ln.Close() })
	go func() { // the hostile relay: a registration gets a flood of notices
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					return
				}
				var b []byte
				for i := range notices {
					b = binary.BigEndian.AppendUint64(b, uint64(i+1))
				}
				_, _ = c.Write(b)
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	// In front of it, a listener that passes the first connection (the
	// registration) to the relay and holds every later one (the answers)
	// without a byte: the callee's handshakes stall there.
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held atomic.Int64
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = front.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		first := true
		for {
			c, err := front.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if !first {
				held.Add(1)
				continue
			}
			first = false
			up, err := net.Dial("tcp", relay.addr())
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, up)
			mu.Unlock()
			go func() { _, _ = io.Copy(up, c) }()
			go func() { _, _ = io.Copy(c, up) }()
		}
	}()

	callee, err := New(Config{Identity: kk, Peers: peers, Logger: slog.New(slog.DiscardHandler),
		HandshakeTimeout: 20 * time.Second, MaxPendingPerSource: perSource})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		callee.RegisterWith(ctx, front.Addr().String(), kr.Public())
	}()
	t.Cleanup(func() {
		cancel()
		_ = callee.Close()
		<-regDone
	})
	waitFor(t, "the callee answering notices", func() bool { return held.Load() >= perSource })
	// Every notice has long been read by now; the stalled answers hold
	// their slots for HandshakeTimeout, past this deadline.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); <-tick.C {
		if n := held.Load(); n > perSource {
			t.Fatalf("the callee opened %d answering connections at once for a flood of %d notices; want at most %d (MaxPendingPerSource)", n, notices, perSource)
		}
	}
}
