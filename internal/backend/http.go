package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
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
	pool    *httpPool
	poolErr error
}

// connPool builds the pool once.
func (h *HTTP) connPool() (*httpPool, error) {
	h.once.Do(func() {
		conns := h.Conns
		if conns <= 0 {
			conns = DefaultConns
		}
		h.pool, h.poolErr = newHTTPPool(h.URL, conns)
	})
	return h.pool, h.poolErr
}

// Close releases the pooled idle connections. Calls may still be made after
// it; they open new ones.
func (h *HTTP) Close() {
	if p, err := h.connPool(); err == nil {
		p.closeIdle()
	}
}

// Call makes one POST.
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
	headers := []string{"Treaty-Peer", inv.Peer.String(), "Treaty-Capability", inv.Capability}
	if inv.CallToken != "" {
		headers = append(headers, "Treaty-Call", inv.CallToken)
	}
	status, body, err := p.do(ctx, inv.Input, max, headers...)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded),
			// The connection's deadline is the context's, and may pass first.
			ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fail(fmt.Sprintf("timed out after %v", h.Timeout), err)
		case errors.Is(err, errBadHeader):
			return nil, fail("misconfigured", err)
		case errors.Is(err, errReadBody):
			return nil, fail("read failed", err)
		}
		return nil, fail("unreachable", err)
	}
	if len(body) > max {
		return nil, outputTooLarge(max)
	}
	if status/100 != 2 {
		return nil, fail(fmt.Sprintf("answered HTTP %d", status), fmt.Errorf("body: %q", truncate(body, 512)))
	}
	body = bytes.TrimSpace(body)
	if !json.Valid(body) {
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
