package transport

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// clientConn is a pooled connection from the RoundTripper.
//
// A direct connection (early) is handed to HTTP/2 as soon as the TLS handshake
// is done, before the server's acceptance marker: the first request leaves
// with no extra round trip. That is safe because by then the client has
// verified the server's CertificateVerify against the pinned key, so the
// request can only reach that peer; what the client does not yet know is
// whether the server accepted it. The marker therefore has to be the first
// byte read: Read consumes it before anything else, and an alert or a close in
// its place is the same *HandshakeError (ReasonNotAdmitted or ReasonRefusedByPeer, logged, counted
// and passed to OnRefused) that Dial returns, from every Read and from a
// failed Write. A refusing server never hands the connection to a Listener, so
// nothing the client sent is processed. Stats count the dial once the marker
// has arrived.
type clientConn struct {
	*tls.Conn
	peer identity.PublicKey
	t    *Transport
	addr string
	rt   *roundTripper
	once sync.Once

	early   bool // the marker is read by the first Read, not by the dial
	marker  sync.Once
	refusal error // set by marker
	closed  atomic.Bool
}

func (c *clientConn) peerKey() identity.PublicKey { return c.peer }

func (c *clientConn) Close() error {
	c.closed.Store(true)
	c.once.Do(func() { c.t.untrack(c) })
	return c.Conn.Close()
}

func (c *clientConn) Read(p []byte) (int, error) {
	if err := c.accepted(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Write reports a refusal in place of the error it caused (a reset or a
// closed connection), so that a request written into a refusing server fails
// with the same typed error as one whose answer was awaited.
func (c *clientConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.early {
		if rerr := c.accepted(); rerr != nil {
			return n, rerr
		}
	}
	return n, err
}

// accepted reads the acceptance marker once; nil for a connection whose
// marker was read at the dial.
func (c *clientConn) accepted() error {
	if !c.early {
		return nil
	}
	c.marker.Do(func() {
		err := readAcceptMarker(c.Conn)
		if err == nil {
			err = c.Conn.NetConn().SetReadDeadline(time.Time{})
		}
		if err == nil {
			c.t.handshakesOut.Add(1)
			c.t.log.Debug("transport: dialed", "peer", c.peer.Short(), "addr", c.addr, "proto", c.Conn.ConnectionState().NegotiatedProtocol)
			c.rt.noteRefusal(c.peer, nil)
			return
		}
		if c.closed.Load() {
			// Closed by this side (pool shutdown) before the marker: not a refusal.
			c.refusal = fmt.Errorf("transport: %s: %w", c.addr, ErrClosed)
			return
		}
		he := classify(sideClient, c.addr, err)
		he.Peer = c.peer
		c.refusal = c.t.refuse(he)
		c.rt.noteRefusal(c.peer, c.refusal)
	})
	return c.refusal
}
