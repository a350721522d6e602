package mcpbridge

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/treaty-dev/treaty/localapi"
)

// TestCallTimeout: a tool call whose node call or stream does not end is a
// tool error at stage transport once it passes Options.CallTimeout, saying
// so, not a call left running for as long as the client does not cancel.
func TestCallTimeout(t *testing.T) {
	f := newFake()
	f.call = func(ctx context.Context, _, _ string, _ json.RawMessage) (*localapi.CallResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f.stream = func(ctx context.Context, _, _ string, _ json.RawMessage, emit func(json.RawMessage) error) error {
		if err := emit(json.RawMessage(`{"tick":1}`)); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	s := connect(t, f, 0, func(o *Options) { o.CallTimeout = 300 * time.Millisecond })
	for _, name := range []string{"globex__echo", "globex__ticks"} {
		start := time.Now()
		res := s.call(t, name, map[string]any{}, nil)
		text := res.Content[0].(*mcp.TextContent).Text
		if !res.IsError || !strings.Contains(text, "stage transport: no answer within the call limit of 300ms") {
			t.Fatalf("%s: %v %q", name, res.IsError, text)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s: the call ended after %v", name, d)
		}
	}
	if _, err := New(Options{Node: f, CallTimeout: -1}); err == nil || !strings.Contains(err.Error(), "Options.CallTimeout") {
		t.Fatalf("a negative CallTimeout: %v", err)
	}
}
