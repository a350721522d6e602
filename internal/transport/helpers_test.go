package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// t0 is the fixed instant every test clock starts from.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey derives a deterministic identity from one byte.
func testKey(tb testing.TB, n byte) identity.PrivateKey {
	tb.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// peerSet is a PeerSource whose answers the test can change at any time.
type peerSet struct {
	mu sync.Mutex
	m  map[identity.PublicKey]bool
}

func admit(keys ...identity.PublicKey) *peerSet {
	s := &peerSet{m: make(map[identity.PublicKey]bool)}
	for _, k := range keys {
		s.m[k] = true
	}
	return s
}

func (s *peerSet) Admitted(k identity.PublicKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *peerSet) set(k identity.PublicKey, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = ok
}

// clock is a settable clock shared by the transports of one test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(at time.Time) *clock { return &clock{t: at} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = at
}

// recorder collects refusals (OnRefused) and the log records of one transport.
type recorder struct {
	mu       sync.Mutex
	refusals []HandshakeError
	records  []slog.Record
}

func (r *recorder) onRefused(e HandshakeError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusals = append(r.refusals, e)
}

func (r *recorder) list() []HandshakeError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]HandshakeError(nil), r.refusals...)
}

func (r *recorder) warnings() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.records {
		if rec.Level >= slog.LevelWarn {
			out = append(out, rec)
		}
	}
	return out
}

// recordHandler is a slog.Handler feeding a recorder.
type recordHandler struct{ r *recorder }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, rec slog.Record) error {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	h.r.records = append(h.r.records, rec.Clone())
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// waitRefusal polls until rec holds at least n refusals.
func waitRefusal(t *testing.T, rec *recorder, n int) []HandshakeError {
	t.Helper()
	waitFor(t, "refusal", func() bool { return len(rec.list()) >= n })
	return rec.list()
}

// waitFor polls cond against the test's deadline (at most 10s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

type node struct {
	*Transport
	key   identity.PrivateKey
	peers *peerSet
	rec   *recorder
}

// newNode starts a transport on 127.0.0.1:0. cfg's Identity, Peers, Listen,
// Logger and OnRefused are filled in; other fields are kept.
func newNode(t *testing.T, key identity.PrivateKey, peers *peerSet, cfg Config) *node {
	t.Helper()
	rec := &recorder{}
	cfg.Identity, cfg.Peers, cfg.Listen = key, peers, "127.0.0.1:0"
	cfg.Logger = slog.New(recordHandler{rec})
	cfg.OnRefused = rec.onRefused
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &node{Transport: tr, key: key, peers: peers, rec: rec}
}

func (n *node) addr() string { return n.Addr().String() }

// serveEcho accepts proto connections on n and echoes them until closed.
func serveEcho(t *testing.T, n *node, proto string) {
	t.Helper()
	l := n.Listener(proto)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
}

// echo writes msg on c and reads it back.
func echo(t *testing.T, c net.Conn, msg string) error {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch")
	}
	return nil
}

// handshakeErr extracts the *HandshakeError of err or fails.
func handshakeErr(t *testing.T, err error) *HandshakeError {
	t.Helper()
	var he *HandshakeError
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) is not a *HandshakeError", err, err)
	}
	return he
}

const testProto = "treaty-test/1"

// dialFrom opens a TCP connection to addr from the loopback address src
// (any 127.0.0.0/8 address works on Linux), so tests can act as many sources.
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	return c
}
