package backend

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/treaty-dev/treaty/internal/h1pool"
	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

// DefaultConns is the connection pool of an HTTP backend when Conns is zero:
// the node's default limits.max_concurrent_per_peer.
const DefaultConns = 64

// idleConnTimeout closes a pooled connection nobody used for this long, so a
// backend dropped by a reload releases its sockets by itself.
const idleConnTimeout = 30 * time.Second

// HTTP POSTs the input JSON to a local URL (http:// or https://) and returns
// the JSON answer. The peer's did:key and the capability travel in
// Treaty-Peer and Treaty-Capability headers.
//
// Connections are pooled and kept open for reuse, at most Conns of them: Go's
// default of two idle ones would make every call beyond the second concurrent
// one open and close a TCP connection, leaving thousands of sockets in
// TIME_WAIT under load. A call beyond Conns in flight waits for a connection,
// within its Timeout. Idle connections close after 30 s.
type HTTP struct {
	URL       string        // required
	Timeout   time.Duration // required
	MaxOutput int           // zero: DefaultMaxOutput
	Conns     int           // connections open at most, kept for reuse; zero: DefaultConns

	once    sync.Once
	target  string // request-target: path and query
	pool    *h1pool.Pool
	poolErr error
}

// conns is the pool's bound, the default filled.
func (h *HTTP) conns() int {
	if h.Conns <= 0 {
		return DefaultConns
	}
	return h.Conns
}

// connPool parses the URL and builds the pool once.
func (h *HTTP) connPool() (*h1pool.Pool, error) {
	h.once.Do(func() { h.pool, h.poolErr = h.newPool() })
	return h.pool, h.poolErr
}

func (h *HTTP) newPool() (*h1pool.Pool, error) {
	// Errors do not quote the URL: it may hold a password.
	u, err := url.Parse(h.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("url does not parse: %w", err)
	}
	port, serverName := u.Port(), ""
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		serverName = u.Hostname()
	default:
		return nil, fmt.Errorf("url scheme %q: want http:// or https://", u.Scheme)
	}
	if u.Host == "" || !httpguts.ValidHostHeader(u.Host) {
		return nil, fmt.Errorf("url host %q: want host or host:port", u.Host)
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	header := []string{"Host", u.Host, "User-Agent", "treaty", "Content-Type", "application/json"}
	if u.User != nil {
		// As net/http sends a URL's userinfo.
		pw, _ := u.User.Password()
		header = append(header, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
	}
	h.target = u.RequestURI()
	return h1pool.New(h1pool.Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
			raw, err := d.DialContext(ctx, "tcp", addr)
			if err != nil || serverName == "" {
				return raw, err
			}
			// Verified against the system's roots: a backend is not pinned.
			tc := tls.Client(raw, &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tc, nil
		},
		Header:      header,
		MaxOpen:     h.conns(),
		IdleTimeout: idleConnTimeout,
	})
}

// Close releases the pooled idle connections. Calls may still be made after
// it; they open new ones.
func (h *HTTP) Close() {
	if p, err := h.connPool(); err == nil {
		p.CloseIdle()
	}
}

// Call makes one POST. It is not sent again after a failure, even one before
// any answer on a reused connection: a backend may act on a POST twice, and
// the pool drops the idle connections a backend closed before reusing them.
func (h *HTTP) Call(ctx context.Context, inv Invocation) ([]byte, error) {
	p, err := h.connPool()
	if err != nil {
		return nil, fail("misconfigured", err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	max := h.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	req := h1pool.Request{Method: http.MethodPost, Target: h.target, Body: inv.Input,
		Header: []string{"Treaty-Peer", inv.Peer.String(), "Treaty-Capability", inv.Capability}}
	if req.Body == nil {
		req.Body = []byte{} // still a Content-Length: 0
	}
	if inv.CallToken != "" {
		req.Header = append(req.Header, "Treaty-Call", inv.CallToken)
	}
	status, body, err := p.Do(ctx, req, max)
	if err != nil {
		switch {
		case errors.Is(err, h1pool.ErrTooLarge):
			return nil, outputTooLarge(max)
		case errors.Is(err, context.DeadlineExceeded):
			return nil, fail(fmt.Sprintf("timed out after %v", h.Timeout), err)
		case errors.Is(err, h1pool.ErrMalformed):
			return nil, fail("misconfigured", err)
		case errors.Is(err, h1pool.ErrBody):
			return nil, fail("read failed", err)
		}
		return nil, fail("unreachable", err)
	}
	if status/100 != 2 {
		return nil, fail(fmt.Sprintf("answered HTTP %d", status), fmt.Errorf("body: %q", truncate(body, 512)))
	}
	body = bytes.TrimSpace(body)
	if !jsonsyntax.Valid(body) {
		return nil, fail("returned invalid JSON", nil)
	}
	return body, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// noRedirects makes a client return a redirect as the answer: a backend's
// redirect is not followed.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
