package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultConns is the connection pool of an HTTP backend when Conns is zero:
// the node's default limits.max_concurrent_per_peer.
const DefaultConns = 64

// idleConnTimeout closes a pooled connection nobody used for this long, so a
// transport dropped by a reload releases its sockets by itself.
const idleConnTimeout = 30 * time.Second

// HTTP POSTs the input JSON to a local URL and returns the JSON answer. The
// peer's did:key and the capability travel in Treaty-Peer and Treaty-Capability
// headers.
//
// Connections are pooled and kept open for reuse, at most Conns of them: Go's
// default of two idle ones would make every call beyond the second concurrent
// one open and close a TCP connection, leaving thousands of sockets in
// TIME_WAIT under load. A call beyond Conns in flight waits for a connection,
// within its Timeout.
type HTTP struct {
	URL       string        // required
	Timeout   time.Duration // required
	MaxOutput int           // zero: DefaultMaxOutput
	Conns     int           // connections open at most, kept for reuse; zero: DefaultConns
	Client    *http.Client  // nil: a pooled client without redirects

	once   sync.Once
	client *http.Client
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// httpClient returns Client or builds the pooled client once.
func (h *HTTP) httpClient() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	h.once.Do(func() {
		conns := h.Conns
		if conns <= 0 {
			conns = DefaultConns
		}
		t := &http.Transport{
			// Local endpoints only: no proxy from the environment.
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     idleConnTimeout,
		}
		h.client = &http.Client{Transport: t, CheckRedirect: noRedirects}
	})
	return h.client
}

// Close releases the pooled idle connections. Calls may still be made after
// it; they open new ones.
func (h *HTTP) Close() {
	if h.Client == nil {
		h.httpClient().CloseIdleConnections()
	}
}

// Call makes one POST.
func (h *HTTP) Call(ctx context.Context, inv Invocation) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(inv.Input))
	if err != nil {
		return nil, fail("misconfigured", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Treaty-Peer", inv.Peer.String())
	req.Header.Set("Treaty-Capability", inv.Capability)
	if inv.CallToken != "" {
		req.Header.Set("Treaty-Call", inv.CallToken)
	}
	resp, err := h.httpClient().Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fail(fmt.Sprintf("timed out after %v", h.Timeout), err)
		}
		return nil, fail("unreachable", err)
	}
	defer resp.Body.Close()
	max := h.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(max)+1))
	if err != nil {
		return nil, fail("read failed", err)
	}
	if len(body) > max {
		return nil, outputTooLarge(max)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fail(fmt.Sprintf("answered HTTP %d", resp.StatusCode), fmt.Errorf("body: %q", truncate(body, 512)))
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
