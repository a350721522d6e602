package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/wire"
)

// An admitted peer that announces a body (Content-Length) and then sends
// none must not hold the callee's handler, its per-peer slot and the body
// buffer (sized from that Content-Length, up to 64 KiB) for ever: the body
// read is part of the call, which limits.call_timeout bounds ("a whole
// non-stream call, body included"). The callee must answer with a refusal
// within call_timeout.
func TestStalledBodyIsBoundedByCallTimeout(t *testing.T) {
	const callTimeout = time.Second
	a := echoServerAndPeer(t, func(cfg *config.Config) { cfg.Limits.CallTimeout = config.Duration(callTimeout) })

	body := []byte(`{"n":1}`)
	pr, pw := io.Pipe() // never written: the announced body never comes
	t.Cleanup(func() { pw.Close() })
	rctx, rcancel := context.WithTimeout(context.Background(), 5*callTimeout)
	defer rcancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, transport.PeerURL(a.target, "/v1/call/echo"), bytes.NewReader(body))
	must(t, err)
	_, err = wire.SignRequest(req, body, wire.SignParams{Key: a.key, Audience: a.target, Capability: "echo", Now: time.Now()})
	must(t, err)
	req.Body, req.ContentLength = pr, int64(len(body))
	req.GetBody = nil
	start := time.Now()
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("no answer %v after the headers of a request whose body never came (call_timeout %v): %v", time.Since(start).Round(time.Millisecond), callTimeout, err)
	}
	defer resp.Body.Close()
	took := time.Since(start)
	b, _ := io.ReadAll(resp.Body)
	f, _ := wire.DecodeFailure(b)
	if resp.StatusCode < 400 || f.Stage != "wire" || f.Limit == nil || f.Limit.Limit != wire.LimitCallTimeout {
		t.Fatalf("status %d, failure %+v for a request whose body never came; want a wire refusal naming %s", resp.StatusCode, f, wire.LimitCallTimeout)
	}
	if took > 3*callTimeout {
		t.Fatalf("refused after %v, want about call_timeout %v", took, callTimeout)
	}
}

// A body that ends before its Content-Length is the peer's malformed
// request, not the callee's internal failure: the refusal must say so.
func TestShortBodyIsRefusedAsMalformed(t *testing.T) {
	a := echoServerAndPeer(t, nil)

	body := []byte(`{"n":1}`)
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, transport.PeerURL(a.target, "/v1/call/echo"), bytes.NewReader(body))
	must(t, err)
	_, err = wire.SignRequest(req, body, wire.SignParams{Key: a.key, Audience: a.target, Capability: "echo", Now: time.Now()})
	must(t, err)
	// The stream ends (END_STREAM) after half the announced bytes.
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body[:len(body)/2])), int64(len(body))
	req.GetBody = nil
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("no answer to a body shorter than its Content-Length: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	f, _ := wire.DecodeFailure(b)
	if resp.StatusCode != http.StatusBadRequest || f.Stage != "wire" || f.Reason != "malformed" {
		t.Fatalf("status %d, failure %+v for a body shorter than its Content-Length; want 400, a wire refusal with reason malformed", resp.StatusCode, f)
	}
}

// echoServerAndPeer starts a node serving "echo", with cfg applied to its
// configuration first, and returns a client for a peer granted "echo" once
// the peer's signed calls are served.
func echoServerAndPeer(t *testing.T, cfg func(*config.Config)) *attacker {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir() + "/server"
	_, err := home.Init(dir, "server", "127.0.0.1:0")
	must(t, err)
	if cfg != nil {
		c, err := config.Load(dir)
		must(t, err)
		cfg(c)
		must(t, config.Save(dir, c))
	}
	server, err := node.Open(node.Options{Home: dir, Logger: quiet})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	must(t, server.Start(ctx))
	t.Cleanup(func() { cancel(); server.Close() })
	echo := backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	must(t, server.Register(node.Handler{Info: node.CapabilityInfo{Name: "echo"}, Backend: echo}))

	key, err := identity.Generate(nil)
	must(t, err)
	must(t, home.AddPeer(server.Home(), "peer", "127.0.0.1:1", key.Public().String()))
	_, err = home.Grant(server.Home(), "peer", "echo")
	must(t, err)
	must(t, server.Reload())
	a := newClient(t, key, server)
	eventually(t, 5*time.Second, func() error {
		if st, _ := a.send(a.signed(t)); st != http.StatusOK {
			return errors.New("the peer's signed call is not served yet")
		}
		return nil
	})
	return a
}
