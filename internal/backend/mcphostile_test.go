package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpfake"
)

// TestMCPHTTPAnswerBodyBounded: an HTTP MCP server answering a call with an
// endless body is cut off near the backend's bound (2*MaxOutput + 1 MiB),
// not read whole into memory (the SDK reads a JSON answer whole); the call
// fails at the backend and the next call, to a server behaving again,
// works.
func TestMCPHTTPAnswerBodyBounded(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t","inputSchema":{"type":"object"}}]`)
	var written atomic.Int64
	srv.OnCall(func(w http.ResponseWriter, id json.RawMessage) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":"`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 1024 { // 64 MiB at most
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	m := &MCP{URL: srv.URL, Tool: "t", Timeout: 20 * time.Second, MaxOutput: 1024}
	t.Cleanup(func() { m.Close() })
	_, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
	if err == nil {
		t.Fatal("an endless answer was accepted")
	}
	// The reason names the MCP limit, as on stdio, not an A2A agent's.
	var f *Failure
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "mcp server message exceeds limit max_message_bytes=") {
		t.Errorf("endless answer: %v, want the message limit named", err)
	}
	if w := written.Load(); w >= 64<<20 {
		t.Fatalf("the whole 64 MiB answer was read (%d bytes)", w)
	}
	srv.OnCall(nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
		if err == nil {
			if string(out) != `{"text":"ok"}` {
				t.Fatalf("answer %s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend did not recover from a cut answer: %v", err)
		}
	}
}

// TestMCPHTTPSlowAnswerEndsWithTheCall: a server that trickles its answer a
// byte at a time is cut off when the call times out: its connection is
// closed (the handler sees it), nothing keeps reading it.
func TestMCPHTTPSlowAnswerEndsWithTheCall(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t","inputSchema":{"type":"object"}}]`)
	ended := make(chan struct{})
	srv.OnCall(func(w http.ResponseWriter, id json.RawMessage) {
		defer close(ended)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":"`))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		stop := time.After(30 * time.Second)
		for {
			select {
			case <-tick.C:
			case <-stop:
				return
			}
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
		}
	})
	m := &MCP{URL: srv.URL, Tool: "t", Timeout: 2 * time.Second}
	t.Cleanup(func() { m.Close() })
	start := time.Now()
	if _, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)}); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("a trickled answer: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the call took %v with a 2s timeout", d)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the trickled answer was still being read 10 s after the call ended")
	}
}

// TestMCPHTTPNotificationFlood: a server that floods notifications before
// its answer: a flood within the answer bound is read through and the call
// answered; an endless one is cut at the bound and the call fails, in time.
func TestMCPHTTPNotificationFlood(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t","inputSchema":{"type":"object"}}]`)
	var count atomic.Int64
	count.Store(5000)
	var written atomic.Int64
	srv.OnCall(func(w http.ResponseWriter, id json.RawMessage) {
		w.Header().Set("Content-Type", "text/event-stream")
		note := []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"" + strings.Repeat("n", 100) + "\"}}\n\n")
		for range count.Load() {
			n, err := w.Write(note)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
		w.Write([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":" + string(id) + ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n\n"))
	})
	m := &MCP{URL: srv.URL, Tool: "t", Timeout: 20 * time.Second}
	t.Cleanup(func() { m.Close() })
	if out, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)}); err != nil || string(out) != `{"text":"ok"}` {
		t.Fatalf("5000 notifications then an answer: %s %v", out, err)
	}
	count.Store(1 << 20) // about 190 MiB
	written.Store(0)
	start := time.Now()
	if _, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)}); err == nil {
		t.Fatal("an endless flood ended in an answer")
	}
	if w := written.Load(); w > 64<<20 {
		t.Fatalf("%d bytes of notifications were read", w)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the flooded call took %v", d)
	}
}

// TestMCPCloseDoesNotWaitForAHungServer: a server that never answers
// initialize holds a call until its timeout, but closing the backend (the
// node stopping) does not wait for it, and the call then ends too.
func TestMCPCloseDoesNotWaitForAHungServer(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t","inputSchema":{"type":"object"}}]`)
	srv.Hang("initialize")
	m := &MCP{URL: srv.URL, Tool: "t", Timeout: 20 * time.Second}
	called := make(chan error, 1)
	go func() {
		_, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
		called <- err
	}()
	// Wait until the call is opening the session.
	deadline := time.Now().Add(10 * time.Second)
	for !m.opening() {
		if time.Now().After(deadline) {
			t.Fatal("the call did not start opening a session")
		}
		time.Sleep(time.Millisecond) // polling a state with no event to wait on
	}
	start := time.Now()
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a server that never answers")
	}
	select {
	case err := <-called:
		if err == nil {
			t.Fatal("the call succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call went on after Close")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// opening reports whether a session is being opened.
func (m *MCP) opening() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending != nil
}

// TestMCPStdioGarbage: a stdio server that writes something other than
// JSON-RPC, or a line larger than any message, fails the call at the
// backend at once, not at its timeout.
func TestMCPStdioGarbage(t *testing.T) {
	t.Parallel()
	for name, script := range map[string]string{
		"not json":  `echo 'hello, I am not an MCP server'; exec sleep 30`,
		"huge line": `head -c 20000000 /dev/zero | tr '\0' 'x'; exec sleep 30`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := &MCP{Argv: []string{"/bin/sh", "-c", script}, Tool: "t", Timeout: 20 * time.Second}
			t.Cleanup(func() { m.Close() })
			start := time.Now()
			_, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
			if err == nil || !strings.Contains(err.Error(), "could not start mcp server") {
				t.Fatalf("%v, want a failure to start", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("failed after %v", d)
			}
		})
	}
}

// TestMCPDescribeHugeOrEndlessLists: a server listing 20,000 tools is read
// (the tool wanted comes last), and one that pages for ever without the tool
// is given up on after 100 pages, in time.
func TestMCPDescribeHugeOrEndlessLists(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("[")
	for i := range 20000 {
		fmt.Fprintf(&b, `{"name":"tool%d","inputSchema":{"type":"object"}},`, i)
	}
	b.WriteString(`{"name":"t","description":"found","inputSchema":{"type":"object"}}]`)
	srv := mcpfake.New(t, b.String())
	m := &MCP{URL: srv.URL, Tool: "t", Timeout: 20 * time.Second}
	t.Cleanup(func() { m.Close() })
	if desc, _, err := m.Describe(t.Context()); err != nil || desc != "found" {
		t.Fatalf("in 20,000 tools: %q %v", desc, err)
	}

	endless := mcpfake.New(t, `[]`)
	endless.OnList(func(w http.ResponseWriter, id json.RawMessage) {
		mcpfake.Result(w, id, `{"tools":[{"name":"other","inputSchema":{"type":"object"}}],"nextCursor":"more"}`)
	})
	e := &MCP{URL: endless.URL, Tool: "t", Timeout: 20 * time.Second}
	t.Cleanup(func() { e.Close() })
	start := time.Now()
	if _, _, err := e.Describe(t.Context()); err == nil || !strings.Contains(err.Error(), "has no tool") {
		t.Fatalf("endless pages: %v", err)
	}
	if n := endless.Lists(); n != 100 {
		t.Fatalf("%d pages read, want 100", n)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("endless pages took %v", d)
	}
}

// TestMCPToolNameLookalikes: a server listing only lookalikes of the tool
// configured (a zero-width character, a fullwidth letter, another case) does
// not describe it: names match byte for byte.
func TestMCPToolNameLookalikes(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t\u200b","description":"zw"},{"name":"\uff54","description":"fw"},{"name":"T","description":"case"}]`)
	m := &MCP{URL: srv.URL, Tool: "t", Timeout: 20 * time.Second}
	t.Cleanup(func() { m.Close() })
	if desc, _, err := m.Describe(t.Context()); err == nil || !strings.Contains(err.Error(), "has no tool") {
		t.Fatalf("lookalikes of the tool: %q %v", desc, err)
	}
}
