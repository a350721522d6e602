package consensus

import (
	"net"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Bounds of what one member may send this node on one group's connections,
// all of them together. Consensus traffic of an honest member stays far
// below; a member that floods (proposals, votes, messages) is slowed to this
// rate, so the others' traffic and the node's calls go on, and the excess is
// reported as budget evidence against it.
const (
	MemberByteRate  = 16 << 20 // bytes per second
	MemberByteBurst = 32 << 20 // bytes
)

// floodReport is how often one member's excess is reported at most.
const floodReport = 10 * time.Second

// bucket is a token bucket of bytes.
type bucket struct {
	mu           sync.Mutex
	rate, burst  float64
	tokens       float64
	last         time.Time
	lastReported time.Time
}

// take spends n bytes and returns how long the reader must wait for the
// bucket to cover them, and whether to report the member now.
func (b *bucket) take(n int, now time.Time) (wait time.Duration, report bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0, false
	}
	wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
	if now.Sub(b.lastReported) >= floodReport {
		b.lastReported, report = now, true
	}
	return wait, report
}

// meters holds one bucket per member of a group.
type meters struct {
	rate, burst float64
	flood       func(identity.PublicKey) // the member went over the rate
	mu          sync.Mutex
	buckets     map[identity.PublicKey]*bucket
}

func newMeters(rate, burst int, flood func(identity.PublicKey)) *meters {
	return &meters{rate: float64(rate), burst: float64(burst), flood: flood, buckets: map[identity.PublicKey]*bucket{}}
}

func (m *meters) wrap(c net.Conn, k identity.PublicKey) net.Conn {
	m.mu.Lock()
	b, ok := m.buckets[k]
	if !ok {
		b = &bucket{rate: m.rate, burst: m.burst}
		m.buckets[k] = b
	}
	m.mu.Unlock()
	return &meteredConn{Conn: c, b: b, k: k, m: m}
}

// meteredConn delays reads once its member is over the rate: TCP then pushes
// back on the sender.
type meteredConn struct {
	net.Conn
	b *bucket
	k identity.PublicKey
	m *meters
}

func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		wait, report := c.b.take(n, time.Now())
		if report && c.m.flood != nil {
			c.m.flood(c.k)
		}
		if wait > 0 {
			time.Sleep(wait) // throttling, not synchronisation: this reader is the one slowed
		}
	}
	return n, err
}

// unwrap returns the transport's connection under c.
func unwrap(c net.Conn) net.Conn {
	if mc, ok := c.(*meteredConn); ok {
		return mc.Conn
	}
	return c
}
