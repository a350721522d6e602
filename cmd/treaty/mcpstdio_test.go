package main

import (
	"strings"
	"testing"
	"time"
)

// TestMCPStdioAnswersBeforeEOF: a client that writes its requests and closes
// stdin (a script, a CI step) gets an answer to each before treaty mcp exits.
func TestMCPStdioAnswersBeforeEOF(t *testing.T) {
	dir, _, _ := tlHome(t) // no node runs: the bridge still lists treaty_peers and treaty_call
	in := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n" +
		`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" +
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}` + "\n" +
		`{"jsonrpc":"2.0","id":3,"method":"ping"}` + "\n"
	done := make(chan string, 1)
	go func() {
		out, _, _ := runIn(t, in, "mcp", "--home", dir)
		done <- out
	}()
	select {
	case out := <-done:
		for _, id := range []string{`"id":1`, `"id":2`, `"id":3`} {
			if !strings.Contains(out, id) {
				t.Errorf("no answer with %s before exit:\n%s", id, out)
			}
		}
		if !strings.Contains(out, "treaty_call") {
			t.Errorf("tools/list did not list treaty_call:\n%s", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("treaty mcp did not exit after its stdin ended")
	}
}
