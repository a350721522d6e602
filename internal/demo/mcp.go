package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/catalogue"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/mcpbridge"
)

// reviewTool is the tool name of globex's MCP tool server.
const reviewTool = "review_code"

// serveReviewTool runs globex's code reviewer as a real MCP tool server
// (streamable HTTP on 127.0.0.1:0, in this process so that the demo needs
// nothing but `go run`) and exposes it as the capability code-review through
// globex's mcp backend, as `treaty expose code-review --mcp-url URL --tool
// review_code` does. stop ends the server.
func serveReviewTool(o *org, review backend.Func) (stop func(), err error) {
	s := mcp.NewServer(&mcp.Implementation{Name: "globex-review", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{
		Name:        reviewTool,
		Description: "reviews a diff and returns comments",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"diff":{"type":"string"},"author":{"type":"string"}},"required":["diff"]}`),
	}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		out, err := review(ctx, backend.Invocation{Input: req.Params.Arguments})
		if err != nil {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(out)}}}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(ln)
	stop = func() { srv.Close() }
	url := "http://" + ln.Addr().String() + "/mcp"
	if err := home.Expose(o.home, config.Capability{Name: "code-review", MCP: &config.MCPBackend{URL: url, Tool: reviewTool}}, true); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// agentOverMCP is acme's agent: an MCP client of treaty mcp (the bridge of
// package mcpbridge, the server `treaty mcp` runs) over acme's local API. It
// lists its tools and calls globex__code-review, which globex serves from its
// MCP tool server.
func agentOverMCP(ctx context.Context, say func(string, ...any), acme *org, diff string) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := api.Listen(acme.n, quiet)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() { cancel(); <-served }()

	b, err := mcpbridge.New(mcpbridge.Options{Node: client.New(acme.home), Logger: quiet, Version: "demo"})
	if err != nil {
		return err
	}
	if err := b.Sync(ctx); err != nil {
		return err
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := b.Server().Connect(ctx, st, nil)
	if err != nil {
		return err
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "acme-agent", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		return err
	}
	defer cs.Close()

	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range list.Tools {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	say("   acme's agent connects to treaty mcp and lists its tools: %v", names)
	if !slices.Contains(names, "globex__code-review") {
		return fmt.Errorf("demo: treaty mcp does not list globex__code-review: %v", names)
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(diff), &args); err != nil {
		return err
	}
	t0 := time.Now()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "globex__code-review", Arguments: args})
	if err != nil {
		return err
	}
	if res.IsError {
		return errors.New("demo: globex__code-review failed through treaty mcp")
	}
	var out struct {
		Output     json.RawMessage      `json:"output"`
		Provenance catalogue.Provenance `json:"provenance"`
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	say("   tools/call globex__code-review -> globex's node -> its MCP tool server (%s, handshake included)", ms(time.Since(t0)))
	say("   tool result  %s", out.Output)
	say("   provenance   peer %s (%s), receipt signed by the peer, audit request %s", out.Provenance.PeerName,
		truncate(out.Provenance.PeerID, 24), truncate(out.Provenance.AuditRequestDigest, 16))
	if out.Provenance.PeerName != "globex" || len(out.Provenance.Receipt) == 0 {
		return fmt.Errorf("demo: the tool result carries no provenance: %s", raw)
	}
	return nil
}
