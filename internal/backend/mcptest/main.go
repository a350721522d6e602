// Command mcptest is a small MCP server on stdio or streamable HTTP for the
// mcp backend's tests: it is a separate process, as a real tool server is.
//
// Tools: echo (structured output: the message, the server's pid and the names
// of any TREATY_* variables it sees), text (plain text), jsontext (text that
// is JSON), big (64 KiB of text), huge (text of the input's "bytes" bytes),
// flood (writes an endless unterminated message straight to stdout), hang
// (answers only when cancelled) and fail (isError); with -listpad N, tools
// pad0, pad1, ... whose 64 KiB descriptions make tools/list N bytes longer.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoIn struct {
	Msg string `json:"msg" jsonschema:"the message to echo"`
}

type hugeIn struct {
	Bytes int `json:"bytes"`
}

type echoOut struct {
	Msg       string   `json:"msg"`
	PID       int      `json:"pid"`
	TreatyEnv []string `json:"treaty_env"`
}

func main() {
	pidfile := flag.String("pidfile", "", "write the pid here once serving")
	addr := flag.String("http", "", "serve streamable HTTP on this address and print it")
	listPad := flag.Int("listpad", 0, "list tools pad0, pad1, ... with 64 KiB descriptions, this many bytes of them in all")
	flag.Parse()

	s := mcp.NewServer(&mcp.Implementation{Name: "mcptest", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "echoes msg"},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoOut, error) {
			var names []string
			for _, kv := range os.Environ() {
				if strings.HasPrefix(kv, "TREATY_") {
					names = append(names, strings.SplitN(kv, "=", 2)[0])
				}
			}
			sort.Strings(names)
			return nil, echoOut{Msg: in.Msg, PID: os.Getpid(), TreatyEnv: names}, nil
		})
	text := func(s string, isErr bool) mcp.ToolHandler {
		return func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}, IsError: isErr}, nil
		}
	}
	obj := map[string]any{"type": "object"}
	s.AddTool(&mcp.Tool{Name: "text", Description: "says hello", InputSchema: obj}, text("hello", false))
	s.AddTool(&mcp.Tool{Name: "jsontext", Description: "JSON as text", InputSchema: obj}, text(`{"a":1}`, false))
	s.AddTool(&mcp.Tool{Name: "big", Description: "64 KiB of text", InputSchema: obj}, text(strings.Repeat("x", 64<<10), false))
	mcp.AddTool(s, &mcp.Tool{Name: "huge", Description: "text of the given size"},
		func(_ context.Context, _ *mcp.CallToolRequest, in hugeIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", in.Bytes)}}}, nil, nil
		})
	for i := 0; i*64<<10 < *listPad; i++ {
		s.AddTool(&mcp.Tool{Name: fmt.Sprintf("pad%d", i), Description: strings.Repeat("p", 64<<10), InputSchema: obj}, text("pad", false))
	}
	s.AddTool(&mcp.Tool{Name: "flood", Description: "an endless message", InputSchema: obj},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			os.Stdout.Write([]byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"`))
			chunk := []byte(strings.Repeat("x", 64<<10))
			for range 1024 { // 64 MiB at most; ends when the client stops reading
				if _, err := os.Stdout.Write(chunk); err != nil {
					break
				}
			}
			<-ctx.Done()
			return nil, ctx.Err()
		})
	s.AddTool(&mcp.Tool{Name: "hang", Description: "answers when cancelled", InputSchema: obj},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
	s.AddTool(&mcp.Tool{Name: "fail", Description: "always fails", InputSchema: obj}, text("secret detail", true))

	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if *addr != "" {
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().String())
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
		if err := http.Serve(ln, h); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
