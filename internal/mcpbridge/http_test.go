package mcpbridge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestToken: the bridge keeps its token in mcp.token (homedir tests the rest).
func TestToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil || strings.TrimSpace(string(b)) != tok {
		t.Fatalf("mcp.token = %q, %v; want %q", b, err, tok)
	}
}

type bearer struct {
	tok  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.next.RoundTrip(r)
}

func TestHTTPBearer(t *testing.T) {
	t.Parallel()
	b, err := New(Options{Node: newFake()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.HTTPHandler("short"); err == nil {
		t.Fatal("a short token was accepted")
	}
	tok := strings.Repeat("k", 64)
	h, err := b.HTTPHandler(tok)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // 127.0.0.1:0
	defer srv.Close()

	for _, auth := range []string{"", "Bearer wrong", "Bearer " + tok[:63], "bearer " + tok, tok} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: HTTP %d, want 401", auth, resp.StatusCode)
		}
	}

	// A body over MaxRequestBytes is refused, not read.
	big := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"` + strings.Repeat("a", MaxRequestBytes) + `"}}`
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(big))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a %d-byte body: HTTP %d, want 413", len(big), resp.StatusCode)
	}

	c := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: srv.URL,
		HTTPClient: &http.Client{Transport: bearer{tok, http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) != 5 {
		t.Fatalf("over HTTP: %d tools, want 5", len(res.Tools))
	}
}

// TestHTTPIdleSessionEnds: a client that opens a session and goes away
// without closing it (a crashed agent, or one that opens a session per call)
// does not hold a goroutine and its state for ever: the session ends after
// Options.SessionIdle without a request.
func TestHTTPIdleSessionEnds(t *testing.T) {
	t.Parallel()
	b, err := New(Options{Node: newFake(), SessionIdle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Node: newFake(), SessionIdle: -time.Second}); err == nil || !strings.Contains(err.Error(), "SessionIdle") {
		t.Fatalf("a negative SessionIdle: %v", err)
	}
	tok := strings.Repeat("k", 64)
	h, err := b.HTTPHandler(tok)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(session, body string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(body))
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
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
	id := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("initialize: HTTP %d, session %q", resp.StatusCode, id)
	}
	post(id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	// The client's stream for server messages ends when the session does.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	get, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, get.Body)
	get.Body.Close()
	if err != nil || ctx.Err() != nil {
		t.Fatalf("the idle session's stream did not end: %v", err)
	}
	if code := post(id, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`).StatusCode; code != http.StatusNotFound {
		t.Fatalf("the idle session is still served: HTTP %d", code)
	}
}
