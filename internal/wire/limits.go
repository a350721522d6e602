package wire

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Limit names, as they appear in LimitError.Limit and in Failure envelopes.
// Durations are expressed in milliseconds.
const (
	LimitMaxBodyBytes         = "max_body_bytes"
	LimitMaxHeaderBytes       = "max_header_bytes"
	LimitTimeToFirstByte      = "time_to_first_byte_ms"
	LimitCallTimeout          = "call_timeout_ms"
	LimitMaxConcurrentPerPeer = "max_concurrent_per_peer"
	LimitMaxStreamEvents      = "max_stream_events"
	LimitMaxEventBytes        = "max_event_bytes"
)

// Limits bound what one federation call may cost either side. Every field
// has a documented default (DefaultLimits, or WithDefaults for zero fields)
// and an allowed range checked by Validate.
type Limits struct {
	// MaxBodyBytes bounds a request or (non-stream) response body.
	// Default 1 MiB; allowed 1 B .. 1 GiB.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds the header section (http.Server.MaxHeaderBytes
	// and http.Transport.MaxResponseHeaderBytes). Default 16 KiB; allowed 4 KiB .. 1 MiB.
	MaxHeaderBytes int
	// TimeToFirstByte bounds the wait for the response headers
	// (http.Transport.ResponseHeaderTimeout). Default 10 s; allowed 1 ms .. 10 min.
	TimeToFirstByte time.Duration
	// CallTimeout bounds a whole non-stream call, body included. Default 30 s;
	// allowed 1 ms .. 1 h.
	CallTimeout time.Duration
	// MaxConcurrentPerPeer bounds calls in flight from one peer (PeerLimiter).
	// Default 64; allowed 1 .. 65536.
	MaxConcurrentPerPeer int
	// MaxStreamEvents bounds the events of one stream, End included.
	// Default 1<<20; allowed 1 .. 1<<40.
	MaxStreamEvents int
	// MaxEventBytes bounds one stream event line, newline excluded.
	// Default 64 KiB; allowed 64 B .. 16 MiB.
	MaxEventBytes int64
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:         1 << 20,
		MaxHeaderBytes:       16 << 10,
		TimeToFirstByte:      10 * time.Second,
		CallTimeout:          30 * time.Second,
		MaxConcurrentPerPeer: 64,
		MaxStreamEvents:      1 << 20,
		MaxEventBytes:        64 << 10,
	}
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.TimeToFirstByte == 0 {
		l.TimeToFirstByte = d.TimeToFirstByte
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = d.CallTimeout
	}
	if l.MaxConcurrentPerPeer == 0 {
		l.MaxConcurrentPerPeer = d.MaxConcurrentPerPeer
	}
	if l.MaxStreamEvents == 0 {
		l.MaxStreamEvents = d.MaxStreamEvents
	}
	if l.MaxEventBytes == 0 {
		l.MaxEventBytes = d.MaxEventBytes
	}
	return l
}

// Validate checks every field against its allowed range; the error names
// the field, the value and the range. Zero fields are invalid: call
// WithDefaults first to accept them.
func (l Limits) Validate() error {
	checks := []struct {
		name      string
		v, lo, hi int64
		unit      string
	}{
		{"MaxBodyBytes", l.MaxBodyBytes, 1, 1 << 30, ""},
		{"MaxHeaderBytes", int64(l.MaxHeaderBytes), 4 << 10, 1 << 20, ""},
		{"TimeToFirstByte", int64(l.TimeToFirstByte), int64(time.Millisecond), int64(10 * time.Minute), "d"},
		{"CallTimeout", int64(l.CallTimeout), int64(time.Millisecond), int64(time.Hour), "d"},
		{"MaxConcurrentPerPeer", int64(l.MaxConcurrentPerPeer), 1, 1 << 16, ""},
		{"MaxStreamEvents", int64(l.MaxStreamEvents), 1, 1 << 40, ""},
		{"MaxEventBytes", l.MaxEventBytes, 64, 16 << 20, ""},
	}
	for _, c := range checks {
		if c.v >= c.lo && c.v <= c.hi {
			continue
		}
		if c.unit == "d" {
			return fmt.Errorf("wire: Limits.%s = %v, want %v..%v", c.name, time.Duration(c.v), time.Duration(c.lo), time.Duration(c.hi))
		}
		return fmt.Errorf("wire: Limits.%s = %d, want %d..%d", c.name, c.v, c.lo, c.hi)
	}
	return nil
}

// LimitError reports that an explicit limit was exceeded. It is the typed
// error a caller gets instead of a reset, and it travels in Failure.Limit.
type LimitError struct {
	Limit string `json:"limit"` // one of the Limit* names
	Max   int64  `json:"max"`
	Got   int64  `json:"got"` // -1 when unknown (reading stopped at Max+1)
}

var limitSubjects = map[string]string{
	LimitMaxBodyBytes:         "body",
	LimitMaxHeaderBytes:       "header",
	LimitTimeToFirstByte:      "time to first byte",
	LimitCallTimeout:          "call",
	LimitMaxConcurrentPerPeer: "concurrent calls",
	LimitMaxStreamEvents:      "stream",
	LimitMaxEventBytes:        "event",
}

// Error reads e.g. "wire: body exceeds limit max_body_bytes=1048576".
func (e *LimitError) Error() string {
	subject, ok := limitSubjects[e.Limit]
	if !ok {
		subject = "value"
	}
	s := fmt.Sprintf("wire: %s exceeds limit %s=%d", subject, e.Limit, e.Max)
	if e.Got >= 0 {
		s += fmt.Sprintf(" (got %d)", e.Got)
	}
	return s
}

// ReadBody reads all of r, refusing with a *LimitError (max_body_bytes, Got
// -1) as soon as more than max bytes arrive; it never reads more than max+1.
// max <= 0 means the default, 1 MiB.
func ReadBody(r io.Reader, max int64) ([]byte, error) {
	return ReadBodySized(r, max, -1)
}

// maxSizeHint bounds the buffer ReadBodySized allocates on the word of a
// Content-Length header before the bytes arrive: a peer announcing large
// bodies it never sends cannot make the node hold memory for them.
const maxSizeHint = 64 << 10

// ReadBodySized is ReadBody for a body that announced its length (a
// Content-Length, -1 when unknown): a body of up to 64 KiB is read into one
// buffer of its size instead of one grown step by step. The limit and the
// errors are ReadBody's; a wrong announcement only costs a larger read.
func ReadBodySized(r io.Reader, max, size int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultLimits().MaxBodyBytes
	}
	var b []byte
	var err error
	if size >= 0 && size <= min(max, maxSizeHint) {
		b, err = readAllInto(make([]byte, 0, size+1), io.LimitReader(r, max+1)) // +1: EOF is seen without growing
	} else {
		b, err = io.ReadAll(io.LimitReader(r, max+1))
	}
	if int64(len(b)) > max {
		return nil, &LimitError{Limit: LimitMaxBodyBytes, Max: max, Got: -1}
	}
	if err != nil {
		return nil, fmt.Errorf("wire: read body: %w", err)
	}
	return b, nil
}

// readAllInto is io.ReadAll appending to b.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// PeerLimiter bounds the calls in flight per peer. It never blocks: a call
// over the limit is refused at once with a *LimitError. Safe for concurrent use.
type PeerLimiter struct {
	max    int
	mu     sync.Mutex
	active map[identity.PublicKey]int
}

// NewPeerLimiter allows max concurrent calls per peer (0: 64).
func NewPeerLimiter(max int) (*PeerLimiter, error) {
	max, err := peerLimiterMax(max)
	if err != nil {
		return nil, err
	}
	return &PeerLimiter{max: max, active: make(map[identity.PublicKey]int)}, nil
}

func peerLimiterMax(max int) (int, error) {
	if max == 0 {
		max = DefaultLimits().MaxConcurrentPerPeer
	}
	if max < 1 || max > 1<<16 {
		return 0, fmt.Errorf("wire: PeerLimiter max = %d, want 1..65536", max)
	}
	return max, nil
}

// Max is the most calls in flight it allows per peer.
func (l *PeerLimiter) Max() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max
}

// SetMax changes the limit (0: 64) and keeps the count of every peer's calls
// in flight: a lower limit applies to them at once, and a peer over it gets
// no new slot until enough of its calls end.
func (l *PeerLimiter) SetMax(max int) error {
	max, err := peerLimiterMax(max)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = max
	return nil
}

// Acquire takes a slot for peer. On success the caller must call release
// exactly once (extra calls are ignored); over the limit it returns a
// *LimitError (max_concurrent_per_peer) with Got = the would-be count.
func (l *PeerLimiter) Acquire(peer identity.PublicKey) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.active[peer]
	if n >= l.max {
		return nil, &LimitError{Limit: LimitMaxConcurrentPerPeer, Max: int64(l.max), Got: int64(n + 1)}
	}
	l.active[peer] = n + 1
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.active[peer] <= 1 {
				delete(l.active, peer)
			} else {
				l.active[peer]--
			}
		})
	}, nil
}

// InFlight returns the calls currently held for peer.
func (l *PeerLimiter) InFlight(peer identity.PublicKey) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active[peer]
}
