package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// gatedPeers admits nobody, and answers only once open is closed: the test
// decides when the server refuses.
type gatedPeers struct {
	asked chan struct{} // closed at the first question
	once  atomic.Bool
	open  chan struct{}
}

func (g *gatedPeers) Admitted(identity.PublicKey) bool {
	if g.once.CompareAndSwap(false, true) {
		close(g.asked)
	}
	select {
	case <-g.open:
	case <-time.After(10 * time.Second):
	}
	return false
}

// countingProxy forwards one connection to addr and counts the bytes the
// client sent through it.
func countingProxy(t *testing.T, addr string, up *atomic.Int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer s.Close()
		back := make(chan struct{})
		go func() {
			defer close(back)
			_, _ = io.Copy(c, s)
			_ = c.Close()
		}()
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				up.Add(int64(n))
				if _, werr := s.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = s.Close()
		<-back
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// The first request leaves right after the TLS handshake, before the server
// has accepted the client. A server that then refuses processes none of it,
// and the client gets the same typed refusal as when it waited for the marker.
func TestServerRefusesAfterClientSentData(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	gate := &gatedPeers{asked: make(chan struct{}), open: make(chan struct{})}
	srvRec := &recorder{}
	srv, err := New(Config{Identity: a, Peers: gate, Listen: "127.0.0.1:0", HandshakeTimeout: 20 * time.Second,
		Logger: slog.New(recordHandler{srvRec}), OnRefused: srvRec.onRefused})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	var served atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	serveDone := make(chan error, 1)
	go func() {
		serveDone <- srv.ServeHTTP(ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
		}))
	}()
	t.Cleanup(func() { cancel(); <-serveDone })

	var up atomic.Int64
	proxy := countingProxy(t, srv.Addr().String(), &up)
	cli := newNode(t, b, admit(), Config{HandshakeTimeout: 20 * time.Second})
	rt := cli.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return proxy, nil })

	const bodyLen = 32 << 10
	result := make(chan error, 1)
	go func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer rcancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, PeerURL(a.Public(), "/x"), bytes.NewReader(make([]byte, bodyLen)))
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		result <- err
	}()
	// The server is deciding; the client has already sent the whole request.
	<-gate.asked
	waitFor(t, "the request's bytes to leave the client", func() bool { return up.Load() > bodyLen })
	close(gate.open)

	var err2 error
	select {
	case err2 = <-result:
	case <-time.After(15 * time.Second):
		t.Fatal("round trip did not return")
	}
	if err2 == nil {
		t.Fatal("round trip succeeded against a refusing server")
	}
	if he := handshakeErr(t, err2); he.Reason != ReasonNotAdmitted || he.Peer != a.Public() {
		t.Fatalf("client got %v (reason %v), want a refusal by %s", he, he.Reason, a.Public().Short())
	}
	if got := waitRefusal(t, srvRec, 1); got[0].Reason != ReasonUnknownKey {
		t.Fatalf("server reason %v, want unknown key", got[0].Reason)
	}
	if n := served.Load(); n != 0 {
		t.Fatalf("refusing server ran its handler %d times", n)
	}
	if s := cli.Stats(); s.Dialed != 0 || s.Refused != 1 {
		t.Fatalf("client stats %+v: want no dial counted and one refusal", s)
	}
	if got := cli.rec.list(); len(got) != 1 || got[0].Reason != ReasonNotAdmitted {
		t.Fatalf("client OnRefused got %+v, want one refusal as not admitted", got)
	}
}

// The acceptance marker read from the answer is checked as Dial checks it.
func TestRoundTripperChecksMarkerInAnswer(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	aCert, err := newCert(a, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{*aCert}, ClientAuth: tls.RequestClientCert,
		NextProtos: []string{ProtoFederation}}
	tests := []struct {
		name   string
		after  func(*tls.Conn)
		reason Reason
	}{
		{"no acceptance marker", func(c *tls.Conn) { _, _ = io.Copy(io.Discard, c) }, ReasonTimeout},
		{"wrong acceptance marker", func(c *tls.Conn) { _, _ = c.Write([]byte{0, 0, 0, 4}) }, ReasonProtocol},
		{"closed without marker", func(*tls.Conn) {}, ReasonRefusedByPeer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := rawServer(t, cfg, tc.after)
			cli := newNode(t, b, admit(), Config{HandshakeTimeout: 300 * time.Millisecond})
			rt := cli.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return addr, nil })
			_, err := get(t, rt, PeerURL(a.Public(), "/x"))
			if err == nil {
				t.Fatal("round trip succeeded")
			}
			if he := handshakeErr(t, err); he.Reason != tc.reason {
				t.Fatalf("reason %v (%v), want %v", he.Reason, he.Err, tc.reason)
			}
			if s := cli.Stats(); s.Dialed != 0 || s.Refused != 1 {
				t.Fatalf("client stats %+v", s)
			}
		})
	}
}

// Concurrent first requests to a server that refuses the client all get the
// typed refusal, whichever of them the refused connection was carrying.
func TestRoundTripperConcurrentRefusals(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(), Config{}) // b is not admitted
	serveHTTP(t, srv, http.HandlerFunc(whoami))
	cli := newNode(t, b, admit(), Config{})
	addr := srv.addr()
	rt := cli.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return addr, nil })
	const n = 16
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			_, err := get(t, rt, PeerURL(a.Public(), "/x"))
			errs <- err
		}()
	}
	close(start)
	for range n {
		err := <-errs
		if err == nil {
			t.Fatal("a call succeeded against a refusing server")
		}
		if he := handshakeErr(t, err); he.Reason != ReasonNotAdmitted {
			t.Fatalf("reason %v (%v), want not admitted by peer", he.Reason, he)
		}
	}
}
