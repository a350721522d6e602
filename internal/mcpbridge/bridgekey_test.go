package mcpbridge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestRequestContextOfAnEndedRequest: the SDK dispatches a call on its
// session's goroutine, which may reach the tool handler only after the
// HTTP request that carried it has ended (the client sent it and vanished
// at once). Such a call must see its request as gone, not run on unbound
// until the call limit; and a client's own header value is never followed.
func TestRequestContextOfAnEndedRequest(t *testing.T) {
	b := &Bridge{}
	var key string
	var during context.Context
	inner := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		key = r.Header.Get(requestHeader)
		during, _ = b.requestContext(&mcp.CallToolRequest{Extra: &mcp.RequestExtra{Header: r.Header}})
	})
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set(requestHeader, "forged")
	b.serve(inner, httptest.NewRecorder(), r)
	if key == "" || key == "forged" {
		t.Fatalf("the handler saw key %q, want a fresh one", key)
	}
	if during == nil || during.Err() != nil {
		t.Fatalf("while its request is served, a call's request context = %v", during)
	}
	// Dispatched after serve returned.
	ctx, ok := b.requestContext(&mcp.CallToolRequest{Extra: &mcp.RequestExtra{Header: http.Header{requestHeader: {key}}}})
	if !ok {
		t.Fatal("a call dispatched after its HTTP request ended is not tied to it: it runs until the call limit")
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("the request context of an ended request is not done")
	}
	// A call not carried over HTTP (stdio) has no request context at all.
	if _, ok := b.requestContext(&mcp.CallToolRequest{Extra: &mcp.RequestExtra{}}); ok {
		t.Fatal("a call without an HTTP header got a request context")
	}
}
