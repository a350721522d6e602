package backend

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMCPStdioMessageBounded: a stdio server's message past 2*MaxOutput +
// 1 MiB fails the call with a reason naming the limit (the node refuses it at
// stage backend), whether it is a complete answer or an endless one; the
// node does not read up to the SDK's 16 MiB first, and the next call works
// on a new server.
func TestMCPStdioMessageBounded(t *testing.T) {
	t.Parallel()
	const maxOut = 1024
	limit := mcpMessageLimit(maxOut)
	want := fmt.Sprintf("mcp server message exceeds limit max_message_bytes=%d", limit)
	m, pidfile := stdioMCP(t, "huge")
	m.MaxOutput = maxOut

	// Within the bound, past MaxOutput: the usual output refusal.
	_, err := m.Call(t.Context(), Invocation{Input: []byte(`{"bytes":4096}`)})
	var f *Failure
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "output exceeds limit") {
		t.Fatalf("a 4 KiB answer: %v", err)
	}
	first := ReadPID(t, pidfile, 0)

	// A complete answer over the message bound.
	_, err = m.Call(t.Context(), Invocation{Input: []byte(fmt.Sprintf(`{"bytes":%d}`, 4<<20))})
	if !errors.As(err, &f) || f.Reason != want {
		t.Fatalf("a 4 MiB answer: %v, want %q", err, want)
	}

	// An endless unterminated message.
	m.Tool = "flood"
	start := time.Now()
	_, err = m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
	if !errors.As(err, &f) || f.Reason != want {
		t.Fatalf("an endless message: %v, want %q", err, want)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("the endless message took %v to refuse", d)
	}

	// The session ended with it; a new server answers.
	m.Tool = "echo"
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := callMCP(t, m, `{"msg":"again"}`)
		if err == nil {
			if v["msg"] != "again" || int(v["pid"].(float64)) == first {
				t.Fatalf("after the oversize message: %v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new server after an oversize message: %v", err)
		}
	}
}

// TestMCPStdioOversizeBeforeInitialize: a server whose first message is
// endless (split over short lines, which a line bound would let through)
// fails the call with the same reason, and its process is ended.
func TestMCPStdioOversizeBeforeInitialize(t *testing.T) {
	t.Parallel()
	const maxOut = 1024
	pidfile := filepath.Join(t.TempDir(), "pid")
	argv := script(t, `echo $$ > `+pidfile+`
printf '['
i=0
while [ $i -lt 400000 ]; do printf '1,\n1,\n1,\n1,\n'; i=$((i+1)); done
sleep 300
`)
	m := &MCP{Argv: argv, Tool: "t", Timeout: 20 * time.Second, MaxOutput: maxOut}
	t.Cleanup(func() { m.Close() })
	_, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
	want := fmt.Sprintf("mcp server message exceeds limit max_message_bytes=%d", mcpMessageLimit(maxOut))
	var f *Failure
	if !errors.As(err, &f) || f.Reason != want {
		t.Fatalf("an endless first message: %v, want %q", err, want)
	}
	waitGone(t, ReadPID(t, pidfile, 0))
}
