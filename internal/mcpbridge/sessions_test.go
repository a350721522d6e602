package mcpbridge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHTTPSessionCap: a local client opening sessions without closing them
// cannot hold an unbounded number: past Options.MaxSessions a new session is
// refused with 503, the open ones keep working, and closing one frees a slot.
func TestHTTPSessionCap(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{Node: newFake(), MaxSessions: -1}); err == nil || !strings.Contains(err.Error(), "MaxSessions") {
		t.Fatalf("a negative MaxSessions: %v", err)
	}
	b, err := New(Options{Node: newFake(), MaxSessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.Repeat("k", 64)
	h, err := b.HTTPHandler(tok)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // 127.0.0.1:0
	defer srv.Close()
	do := func(method, session, body string) (*http.Response, string) {
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(got)
	}
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	open := func() (int, string, string) {
		resp, body := do(http.MethodPost, "", initialize)
		id := resp.Header.Get("Mcp-Session-Id")
		if resp.StatusCode == http.StatusOK {
			do(http.MethodPost, id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		}
		return resp.StatusCode, id, body
	}
	var ids []string
	for range 2 {
		code, id, body := open()
		if code != http.StatusOK || id == "" {
			t.Fatalf("a session under the cap: HTTP %d %q", code, body)
		}
		ids = append(ids, id)
	}
	code, _, body := open()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "sessions") {
		t.Fatalf("a session past the cap: HTTP %d %q, want 503 naming the limit", code, body)
	}
	for _, id := range ids {
		if resp, body := do(http.MethodPost, id, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); resp.StatusCode != http.StatusOK || !strings.Contains(body, "treaty_peers") {
			t.Fatalf("an open session past the cap: HTTP %d %q", resp.StatusCode, body)
		}
	}
	if resp, _ := do(http.MethodDelete, ids[0], ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: HTTP %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, _, body := open()
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed session's slot was not freed: HTTP %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond) // polling, not synchronisation
	}
}
