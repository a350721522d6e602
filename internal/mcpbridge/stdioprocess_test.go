package mcpbridge_test

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMCPProcessStdioMessageBounded: `treaty mcp` on stdio ends with exit 2
// (stage usage) when its agent sends a message over 4 MiB, saying so on
// stderr, instead of reading it (up to the SDK's 16 MiB) and serving on.
func TestMCPProcessStdioMessageBounded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var stderr syncBuffer
	cmd := exec.CommandContext(ctx, treatyBin(t), "mcp", "--home", t.TempDir(), "--poll", "1s")
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Stdin stays open: only the oversize message may end the session.
		io.WriteString(stdin, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`+"\n"+
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"+
			`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"treaty_call","arguments":{"peer":"globex","capability":"echo","input":{"pad":"`+strings.Repeat("x", 6<<20)+`"}}}}`+"\n")
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if ctx.Err() != nil {
		t.Fatalf("treaty mcp still served after an oversize message; stderr:\n%s", stderr.String())
	}
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2; stderr:\n%s", err, stderr.String())
	}
	if s := stderr.String(); !strings.Contains(s, "treaty: usage: an MCP message from the client exceeds 4194304 bytes") {
		t.Fatalf("stderr does not name the stage and the limit:\n%s", s)
	}
}
