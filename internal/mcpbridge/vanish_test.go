package mcpbridge

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// TestHTTPVanishedClientCancelsItsCall: when the HTTP request carrying a
// tool call goes away (the client crashed or closed its connection, without
// notifications/cancelled), the node call it started is cancelled at once,
// freeing the peer's concurrency slot, instead of running until the call
// limit; the session still serves the next request. Without a resumable
// event store the call's answer could never reach the client anyway.
func TestHTTPVanishedClientCancelsItsCall(t *testing.T) {
	t.Parallel()
	started, ended := make(chan struct{}, 4), make(chan struct{}, 4)
	f := newFake()
	f.call = func(ctx context.Context, _, _ string, _ json.RawMessage) (*localapi.CallResponse, error) {
		started <- struct{}{}
		<-ctx.Done()
		ended <- struct{}{}
		return nil, ctx.Err()
	}
	f.stream = func(ctx context.Context, _, _ string, _ json.RawMessage, emit func(json.RawMessage) error) error {
		started <- struct{}{}
		<-ctx.Done()
		ended <- struct{}{}
		return ctx.Err()
	}
	b, err := New(Options{Node: f}) // the default call limit, 30 min
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok := strings.Repeat("k", 64)
	h, err := b.HTTPHandler(tok)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(ctx context.Context, session, body string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		// A client cannot name another request for the bridge to follow.
		req.Header.Set(requestHeader, "forged")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		return srv.Client().Do(req)
	}
	resp, err := post(t.Context(), "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("initialize: HTTP %d, session %q", resp.StatusCode, id)
	}
	if resp, err := post(t.Context(), id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	for i, name := range []string{"globex__echo", "globex__ticks"} {
		ctx, vanish := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := post(ctx, id, `{"jsonrpc":"2.0","id":`+string(rune('2'+i))+`,"method":"tools/call","params":{"name":"`+name+`","arguments":{}}}`)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the call did not reach the node", name)
		}
		vanish() // the client goes away: its connection closes
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the call of a vanished client was still running 10 s later", name)
		}
		<-done
	}

	resp, err = post(t.Context(), id, `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "globex__echo") {
		t.Fatalf("the session after a vanished call: HTTP %d %.200s", resp.StatusCode, body)
	}
}
