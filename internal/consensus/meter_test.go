package consensus

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestMeterSlowsAFloodingMember: past its burst a member's bytes arrive no
// faster than the rate, the flood is reported once, and another member's
// bucket is untouched.
func TestMeterSlowsAFloodingMember(t *testing.T) {
	const rate, burst = 64 << 10, 16 << 10 // bytes/s, bytes
	var reports atomic.Int32
	m := newMeters(rate, burst, func(identity.PublicKey) { reports.Add(1) })
	flooder, other := testKey(t, 1).Public(), testKey(t, 2).Public()

	a, b := net.Pipe()
	conn := m.wrap(b, flooder)
	const total = burst + rate/4 // a quarter second over the burst
	go func() {
		a.Write(make([]byte, total))
		a.Close()
	}()
	start := time.Now()
	n, err := io.Copy(io.Discard, conn)
	elapsed := time.Since(start)
	if err != nil || n != total {
		t.Fatalf("read %d, %v", n, err)
	}
	if elapsed < 200*time.Millisecond {
		t.Fatalf("%d bytes past a %d-byte burst at %d B/s took %v; want at least 200ms", total, burst, rate, elapsed)
	}
	if reports.Load() != 1 {
		t.Fatalf("flood reported %d times, want once", reports.Load())
	}
	if wait, _ := m.wrap(nil, other).(*meteredConn).b.take(burst, time.Now()); wait != 0 {
		t.Fatalf("another member waits %v: buckets are shared", wait)
	}
	if k, ok := (&checkedNetwork{inner: nopNetwork{}}).Peer(conn); ok || !k.IsZero() {
		t.Fatal("Peer did not unwrap to the inner network's answer")
	}
}
