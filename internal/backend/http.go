package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// HTTP POSTs the input JSON to a local URL and returns the JSON answer. The
// peer's did:key and the capability travel in Treaty-Peer and Treaty-Capability
// headers.
type HTTP struct {
	URL       string        // required
	Timeout   time.Duration // required
	MaxOutput int           // zero: DefaultMaxOutput
	Client    *http.Client  // nil: a client without redirects
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

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
	c := h.Client
	if c == nil {
		c = noRedirects
	}
	resp, err := c.Do(req)
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
