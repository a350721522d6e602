package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Listener returns the listener for connections whose negotiated ALPN
// protocol is proto; calling it again with the same proto returns the same
// listener until that listener is closed. Registering a protocol makes the
// server offer it from the next handshake on; call Listener before Start for
// each protocol a node serves, or its first clients are refused as speaking an
// unknown protocol. ProtoFederation is registered by New (see ServeHTTP).
//
// Accepted connections have completed the handshake and all key checks; use
// PeerFromConn for the client's key. Accept writes the acceptance marker the
// dialer waits for (see Dial). A connection no one accepts within
// HandshakeTimeout of its arrival is closed (the dialer sees a refusal). Closing the listener unregisters proto.
// An invalid proto (not 1 to 255 bytes) yields a listener whose Accept fails.
func (t *Transport) Listener(proto string) net.Listener {
	if err := checkProto(proto); err != nil {
		return &badListener{t: t, err: fmt.Errorf("transport: listener: %w", err)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.listeners[proto]; ok {
		return l
	}
	l := &protoListener{t: t, proto: proto, ch: make(chan *serverConn), done: make(chan struct{})}
	if t.closed {
		close(l.done)
		return l
	}
	t.listeners[proto] = l
	t.rebuildServerConfigLocked()
	return l
}

func (t *Transport) lookup(proto string) *protoListener {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.listeners[proto]
}

func (t *Transport) hasProto(proto string) bool { return t.lookup(proto) != nil }

// protoListener delivers the server connections of one ALPN protocol.
type protoListener struct {
	t     *Transport
	proto string
	ch    chan *serverConn // unbuffered: the handshake goroutine waits for an acceptor
	done  chan struct{}
	once  sync.Once
}

func (l *protoListener) Accept() (net.Conn, error) { return l.accept(context.Background()) }

// accept is Accept that also stops when ctx is done.
func (l *protoListener) accept(ctx context.Context) (*serverConn, error) {
	return acceptFrom(ctx, l, nil)
}

// acceptFrom accepts from a and, if not nil, b: ServeHTTP takes both
// federation protocols in one loop. It ends when either listener closes.
func acceptFrom(ctx context.Context, a, b *protoListener) (*serverConn, error) {
	var bch chan *serverConn
	var bdone chan struct{}
	if b != nil {
		bch, bdone = b.ch, b.done
	}
	for {
		var c *serverConn
		select {
		case c = <-a.ch:
		case c = <-bch:
		case <-a.done:
			return nil, fmt.Errorf("transport: accept %s: %w", a.proto, ErrClosed)
		case <-bdone:
			return nil, fmt.Errorf("transport: accept %s: %w", b.proto, ErrClosed)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := c.confirm(a.t.cfg.HandshakeTimeout); err != nil {
			a.t.log.Debug("transport: acceptance marker not delivered", "peer", c.peer.Short(),
				"addr", c.RemoteAddr().String(), "err", err)
			_ = c.Close()
			continue
		}
		return c, nil
	}
}

// Close unregisters the protocol; later handshakes offering it are refused.
func (l *protoListener) Close() error {
	l.once.Do(func() {
		l.t.mu.Lock()
		if l.t.listeners[l.proto] == l {
			delete(l.t.listeners, l.proto)
			l.t.rebuildServerConfigLocked()
		}
		l.t.mu.Unlock()
		close(l.done)
	})
	return nil
}

func (l *protoListener) Addr() net.Addr {
	if a := l.t.Addr(); a != nil {
		return a
	}
	return &net.TCPAddr{}
}

// badListener is returned for an invalid protocol name.
type badListener struct {
	t   *Transport
	err error
}

func (l *badListener) Accept() (net.Conn, error) { return nil, l.err }
func (l *badListener) Close() error              { return nil }
func (l *badListener) Addr() net.Addr {
	if a := l.t.Addr(); a != nil {
		return a
	}
	return &net.TCPAddr{}
}

// serverConn is an accepted connection: TLS done, client key verified.
type serverConn struct {
	*tls.Conn
	peer  identity.PublicKey
	proto string
	group connKey // what MaxConnsPerPeer counts it under
	t     *Transport
	once  sync.Once
}

func (c *serverConn) peerKey() identity.PublicKey { return c.peer }

// confirm writes the acceptance marker the dialer waits for.
func (c *serverConn) confirm(timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte{acceptMarker}); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// Close closes the connection and forgets it.
func (c *serverConn) Close() error {
	c.once.Do(func() { c.t.untrackServer(c) })
	return c.Conn.Close()
}

// PeerFromConn returns the handshake-proven client key of a connection
// accepted from a Listener of this package. It reports false for any other
// connection (for Dial's connections, the key is the one the caller pinned).
func PeerFromConn(c net.Conn) (identity.PublicKey, bool) {
	if sc, ok := c.(*serverConn); ok {
		return sc.peer, true
	}
	return identity.PublicKey{}, false
}
