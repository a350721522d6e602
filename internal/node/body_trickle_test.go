package node_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/wire"
)

// bodyCall sends a signed echo call whose body is the reader r, announced
// with contentLength (-1: none), and returns the status, the failure
// envelope and how long the answer took.
func bodyCall(t *testing.T, a *attacker, r io.Reader, contentLength int64) (int, wire.Failure, time.Duration) {
	t.Helper()
	body := []byte(`{"n":1}`)
	rctx, rcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer rcancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, transport.PeerURL(a.target, "/v1/call/echo"), bytes.NewReader(body))
	must(t, err)
	_, err = wire.SignRequest(req, body, wire.SignParams{Key: a.key, Audience: a.target, Capability: "echo", Now: time.Now()})
	must(t, err)
	req.Body, req.ContentLength = io.NopCloser(r), contentLength
	req.GetBody = nil
	start := time.Now()
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("no answer after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	defer resp.Body.Close()
	took := time.Since(start)
	b, _ := io.ReadAll(resp.Body)
	f, _ := wire.DecodeFailure(b)
	return resp.StatusCode, f, took
}

// trickle yields one byte per read, paced, until stop: a peer that keeps
// its body arriving but never ends it.
type trickle struct{ stop <-chan struct{} }

func (tr trickle) Read(p []byte) (int, error) {
	select {
	case <-tr.stop:
		return 0, io.ErrUnexpectedEOF
	case <-time.After(20 * time.Millisecond):
	}
	p[0] = ' '
	return 1, nil
}

// A body that keeps trickling, never ending and never over the size limit,
// is still bounded by call_timeout as a whole: the body timer fires however
// often bytes arrive, and the refusal names call_timeout.
func TestTricklingBodyIsBoundedByCallTimeout(t *testing.T) {
	const callTimeout = time.Second
	a := echoServerAndPeer(t, func(cfg *config.Config) { cfg.Limits.CallTimeout = config.Duration(callTimeout) })
	stop := make(chan struct{})
	defer close(stop)
	status, f, took := bodyCall(t, a, trickle{stop}, -1)
	if status < 400 || f.Stage != "wire" || f.Limit == nil || f.Limit.Limit != wire.LimitCallTimeout {
		t.Fatalf("status %d, failure %+v for a trickling body; want a wire refusal naming %s", status, f, wire.LimitCallTimeout)
	}
	if took > 3*callTimeout {
		t.Fatalf("refused after %v, want about call_timeout %v", took, callTimeout)
	}
}

// A body over max_body_bytes is refused for its size, not as a timeout,
// though the body timer is armed while it is read; a body in time is served.
func TestBodyLimitAndTimerKeepTheirErrors(t *testing.T) {
	a := echoServerAndPeer(t, func(cfg *config.Config) {
		cfg.Limits.MaxBodyBytes = 64
		cfg.Limits.CallTimeout = config.Duration(10 * time.Second)
	})
	status, f, _ := bodyCall(t, a, bytes.NewReader(bytes.Repeat([]byte(" "), 1000)), -1)
	if status < 400 || f.Stage != "wire" || f.Limit == nil || f.Limit.Limit != wire.LimitMaxBodyBytes {
		t.Fatalf("status %d, failure %+v for an oversized body; want a wire refusal naming %s", status, f, wire.LimitMaxBodyBytes)
	}
	if status, f, _ := bodyCall(t, a, bytes.NewReader([]byte(`{"n":1}`)), -1); status != http.StatusOK {
		t.Fatalf("status %d, failure %+v for a body in time", status, f)
	}
}
