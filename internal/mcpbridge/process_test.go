package mcpbridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
)

// binDir holds the treaty binary, built once (on first use) for the tests
// that run `treaty mcp` as a separate process.
var (
	binDir   string
	binOnce  sync.Once
	binErr   error
	binBuilt string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "treaty-mcp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// treatyBin builds the treaty binary (without -race: it is the system
// under test's process, not the test's).
func treatyBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		out := filepath.Join(binDir, "treaty")
		b, err := exec.Command("go", "build", "-o", out, "github.com/treaty-dev/treaty/cmd/treaty").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building treaty: %v\n%s", err, b)
			return
		}
		binBuilt = out
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binBuilt
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type realNode struct {
	n    *node.Node
	home string
}

// start runs a real node with its local API in this process.
func start(t *testing.T, name string) *realNode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if _, err := home.Init(dir, name, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{Home: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := n.Start(ctx); err != nil {
		cancel()
		n.Close()
		t.Fatal(err)
	}
	srv, err := api.Listen(n, quiet)
	if err != nil {
		cancel()
		n.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		n.Close()
	})
	return &realNode{n: n, home: dir}
}

// syncBuffer collects the child's stderr for the failure message.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMCPProcess is the end-to-end test: the Go SDK's MCP client
// talks to `treaty mcp`, a separate process, pointed at acme's home; acme
// and globex are real nodes federated over loopback mTLS. The client lists
// the tools, calls globex's capability, gets a denied capability's refusal
// as a tool error, and is told the list changed when globex grants more.
//
// It runs once per protocol generation: 2025-11-25, which deployed agents
// speak and where list changes go to every session, and the SDK's default,
// where they go to sessions that subscribed.
func TestMCPProcess(t *testing.T) {
	for _, version := range []string{"2025-11-25", ""} {
		name := version
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) { testMCPProcess(t, version) })
	}
}

func testMCPProcess(t *testing.T, version string) {
	acme, globex := start(t, "acme"), start(t, "globex")
	for _, p := range [][2]*realNode{{acme, globex}, {globex, acme}} {
		if err := home.AddPeer(p[0].home, p[1].n.Name(), p[1].n.Addr().String(), p[1].n.ID().String()); err != nil {
			t.Fatal(err)
		}
	}
	echo := backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	for _, h := range []node.Handler{
		{Info: node.CapabilityInfo{Name: "echo", Description: "returns its input",
			InputSchema: map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}}}, Backend: echo},
		{Info: node.CapabilityInfo{Name: "secret", Description: "not for acme yet"}, Backend: echo},
		{Info: node.CapabilityInfo{Name: "ticks", Description: "three events"},
			Streamer: backend.StreamFunc(func(_ context.Context, _ backend.Invocation, emit func([]byte) error) error {
				for i := 1; i <= 3; i++ {
					if err := emit(fmt.Appendf(nil, `{"tick":%d}`, i)); err != nil {
						return err
					}
				}
				return nil
			})},
	} {
		if err := globex.n.Register(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"echo", "ticks"} {
		if _, err := home.Grant(globex.home, "acme", c); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []*realNode{acme, globex} {
		if err := e.n.Reload(); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var stderr syncBuffer
	cmd := exec.CommandContext(ctx, treatyBin(t), "mcp", "--home", acme.home, "--poll", "200ms")
	cmd.Stderr = &stderr
	changed := make(chan struct{}, 16)
	progress := make(chan *mcp.ProgressNotificationParams, 16)
	c := mcp.NewClient(&mcp.Implementation{Name: "agent"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			select {
			case progress <- r.Params:
			default:
			}
		},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	var opts *mcp.ClientSessionOptions
	if version != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: version}
	}
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, opts)
	if err != nil {
		t.Fatalf("connect: %v\nstderr: %s", err, stderr.String())
	}
	defer cs.Close()
	defer func() {
		if t.Failed() {
			t.Logf("treaty mcp stderr:\n%s", stderr.String())
		}
	}()

	names := func() []string {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("ListTools: %v", err)
		}
		var n []string
		for _, tl := range res.Tools {
			n = append(n, tl.Name)
		}
		slices.Sort(n)
		return n
	}
	waitFor := func(tool string) {
		t.Helper()
		for !slices.Contains(names(), tool) {
			select {
			case <-ctx.Done():
				t.Fatalf("%s never listed; tools: %v", tool, names())
			case <-changed:
			case <-time.After(100 * time.Millisecond): // poll the list as well as wait for the notice
			}
		}
	}

	// 1. The tools: globex's granted capability and the two fixed ones.
	waitFor("globex__echo")
	waitFor("globex__ticks")
	if got := names(); !slices.Equal(got, []string{"globex__echo", "globex__ticks", "treaty_call", "treaty_peers"}) {
		t.Fatalf("tools = %v", got)
	}

	// 2. A call through both nodes, with its provenance.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "globex__echo", Arguments: map[string]any{"q": "hello globex"}})
	if err != nil || res.IsError {
		t.Fatalf("call: %v %+v", err, res)
	}
	var out struct {
		Output     map[string]any `json:"output"`
		Provenance struct {
			PeerID  string          `json:"peer_id"`
			Peer    string          `json:"peer"`
			Receipt json.RawMessage `json:"receipt"`
			Digest  string          `json:"audit_request_digest"`
			Trust   *struct {
				Level string `json:"level"`
			} `json:"trust"`
			Audit *struct {
				Index     uint64          `json:"index"`
				SentIndex uint64          `json:"sent_index"`
				Report    json.RawMessage `json:"report"`
			} `json:"audit"`
		} `json:"provenance"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Output["q"] != "hello globex" || out.Provenance.PeerID != globex.n.ID().String() || out.Provenance.Peer != "globex" ||
		!strings.Contains(string(out.Provenance.Receipt), `"callee"`) || len(out.Provenance.Digest) != 64 ||
		out.Provenance.Trust == nil || out.Provenance.Trust.Level == "" ||
		out.Provenance.Audit == nil || out.Provenance.Audit.Index <= out.Provenance.Audit.SentIndex || !strings.Contains(string(out.Provenance.Audit.Report), `"sanitizer"`) {
		t.Fatalf("result = %s", b)
	}

	// A stream: each event is a progress notification, all are in the result.
	p := &mcp.CallToolParams{Name: "globex__ticks", Arguments: map[string]any{}}
	p.SetProgressToken("ticks-1")
	res, err = cs.CallTool(ctx, p)
	if err != nil || res.IsError {
		t.Fatalf("stream: %v %+v", err, res)
	}
	if b, _ := json.Marshal(res.StructuredContent); !strings.Contains(string(b), `"events":[{"tick":1},{"tick":2},{"tick":3}]`) {
		t.Fatalf("stream result = %s", b)
	}
	for i := 1; i <= 3; i++ {
		select {
		case n := <-progress:
			if n.ProgressToken != "ticks-1" || n.Message != fmt.Sprintf(`{"tick":%d}`, i) {
				t.Fatalf("progress %d = %+v", i, n)
			}
		case <-ctx.Done():
			t.Fatalf("progress %d never came", i)
		}
	}

	// 3. A capability globex has not granted: a tool error naming the stage.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "treaty_call",
		Arguments: map[string]any{"peer": "globex", "capability": "secret", "input": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := res.Content[0].(*mcp.TextContent)
	if !res.IsError || tc == nil || !strings.Contains(tc.Text, "stage policy") {
		t.Fatalf("denied call = %v %+v", res.IsError, res.Content)
	}

	// 4. globex grants it: the client is told the list changed, and the
	// new tool is there.
	for len(changed) > 0 {
		<-changed
	}
	if _, err := home.Grant(globex.home, "acme", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := globex.n.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("no notifications/tools/list_changed after the grant")
	}
	waitFor("globex__secret")
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "globex__secret", Arguments: map[string]any{"k": 1}})
	if err != nil || res.IsError {
		t.Fatalf("call after the grant: %v %+v", err, res)
	}
}

// TestMCPHTTPProcess runs `treaty mcp --http` as a separate process: it
// refuses a non-loopback address, makes the token file 0600, refuses
// requests without the token and serves MCP to a client that sends it.
func TestMCPHTTPProcess(t *testing.T) {
	bin := treatyBin(t)
	dir := filepath.Join(t.TempDir(), "acme")
	if _, err := home.Init(dir, "acme", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	refused := exec.CommandContext(ctx, bin, "mcp", "--home", dir, "--http", "0.0.0.0:0")
	if out, err := refused.CombinedOutput(); refused.ProcessState == nil || refused.ProcessState.ExitCode() != 2 ||
		!strings.Contains(string(out), "loopback") {
		t.Fatalf("--http 0.0.0.0:0: %v %q, want exit 2", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "mcp.token")); !os.IsNotExist(err) {
		t.Fatalf("a refused start made a token: %v", err)
	}

	cmd := exec.CommandContext(ctx, bin, "mcp", "--home", dir, "--http", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "serving http://"); ok {
				a, _, _ := strings.Cut(rest, "/")
				addr <- a
			}
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + "/"
	case <-ctx.Done():
		t.Fatal("treaty mcp --http never said where it serves")
	}

	st, err := os.Stat(filepath.Join(dir, "mcp.token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "mcp.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: HTTP %d, want 401", resp.StatusCode)
	}

	hc := &http.Client{Transport: headerRT{"Authorization", "Bearer " + strings.TrimSpace(string(tok))}}
	c := mcp.NewClient(&mcp.Implementation{Name: "agent"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"treaty_call", "treaty_peers"}) {
		t.Fatalf("tools = %v", names)
	}
}

type headerRT struct{ k, v string }

func (h headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.k, h.v)
	return http.DefaultTransport.RoundTrip(r)
}
