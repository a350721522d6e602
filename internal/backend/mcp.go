package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpframe"
)

// MCP backend bounds: a server that dies is restarted with restartBackoff; a
// server nobody called for mcpIdle is stopped and started on the next call.
const (
	mcpIdle   = time.Minute
	mcpStderr = 4 << 10 // stderr kept for the log when a server dies
)

// MCP calls one tool of a local MCP server: a command the node starts and
// talks to over stdio (Argv), or a streamable HTTP endpoint (URL).
//
// One session serves every call, concurrently. It opens on the first call (or
// Describe) and closes after a minute without calls, so the servers of a
// configuration a reload replaced end by themselves; a stdio server's whole
// process group is killed when its session ends. A session whose server
// died is opened again on the next call: at once after the first death, then
// with backoff from 100ms doubling to 5s; calls inside the backoff fail fast.
//
// The server sees the call's input as the tool's arguments and nothing else:
// no peer identity, no call token. The client offers no roots, sampling or
// elicitation, so the server cannot ask the node for anything. A stdio server's environment is Exec's
// minus every TREATY_* variable. Its stderr is kept (4 KiB) for the log when
// it dies and never sent to the peer.
//
// What a server sends is bounded: an HTTP server's every answer body (a
// stream of events included) and a stdio server's every message at
// 2*MaxOutput + 1 MiB (a stdio message past it ends the session and fails the
// calls in flight, "mcp server message exceeds limit"), and an answer to
// tools/list at MaxListPage (or that bound, if larger); a description and
// input schema as Describe says.
//
// The answer is the tool's structuredContent when present, else its text
// content when that is JSON, else {"text": "..."}. A result with isError
// fails the call with the reason "tool reported an error"; the tool's text
// goes to Failure.Err only.
type MCP struct {
	Argv       []string      // stdio server: program and arguments; or
	URL        string        // streamable HTTP endpoint
	Tool       string        // required
	Env        []string      // stdio: extra KEY=VALUE entries
	EnvAllow   []string      // stdio: names passed through from the node's environment
	Timeout    time.Duration // per call, and for opening the session; required
	MaxOutput  int           // zero: DefaultMaxOutput
	HTTPClient *http.Client  // URL only; nil: a client without proxy or redirects
	Log        *slog.Logger  // nil: slog.Default()

	idleAfter time.Duration                           // tests: mcpIdle otherwise
	signal    func(pid int, sig syscall.Signal) error // tests: syscall.Kill otherwise

	mu       sync.Mutex
	sess     *mcpSession
	pending  chan struct{}      // closed when the session being opened is open or failed; nil when none is
	life     context.Context    // ends at Close, cutting a session being opened
	end      context.CancelFunc // ends life
	restarts restartBackoff
	closed   bool
}

type mcpSession struct {
	cs      *mcp.ClientSession
	stderr  *lockedWriter // nil for URL sessions
	buf     *limitedBuffer
	over    atomic.Bool  // a stdio server's message passed its bound
	listing atomic.Int32 // tools/list requests in flight: a stdio message may be a page long
	dead    chan struct{}
	mu      sync.Mutex
	busy    int
	lastUse time.Time
	stopped bool // closed on purpose (idle, Close): not a death
}

func (m *MCP) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

func (m *MCP) maxOutput() int {
	if m.MaxOutput > 0 {
		return m.MaxOutput
	}
	return DefaultMaxOutput
}

func (m *MCP) target() string {
	if m.URL != "" {
		return m.URL
	}
	if len(m.Argv) > 0 {
		return m.Argv[0]
	}
	return ""
}

// session returns the live session, opening one if there is none. The open
// runs without m.mu held: calls arriving meanwhile wait for it within their
// own ctx, and Close cuts it short.
func (m *MCP) session(ctx context.Context) (*mcpSession, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, fail("backend closed", nil)
		}
		if s, ok := m.live(); ok {
			m.mu.Unlock()
			return s, nil
		}
		if p := m.pending; p != nil {
			m.mu.Unlock()
			select {
			case <-p:
				continue
			case <-ctx.Done():
				return nil, m.ctxFailure(ctx)
			}
		}
		if wait := m.restarts.wait(time.Now()); wait > 0 {
			m.mu.Unlock()
			return nil, fail(fmt.Sprintf("mcp server restarting; retry in %v", wait.Round(time.Millisecond)), nil)
		}
		if m.life == nil {
			m.life, m.end = context.WithCancel(context.Background())
		}
		p, life := make(chan struct{}), m.life
		m.pending = p
		m.mu.Unlock()

		octx, cancel := context.WithCancel(ctx)
		unwatch := context.AfterFunc(life, cancel)
		s, err := m.open(octx)
		unwatch()
		cancel()

		m.mu.Lock()
		m.pending = nil
		close(p)
		switch {
		case err != nil:
			m.died(nil)
			m.mu.Unlock()
			if errors.Is(err, mcpframe.ErrTooLarge) {
				return nil, messageTooLarge(mcpMessageLimit(m.maxOutput()), err)
			}
			return nil, fail("could not start mcp server", err)
		case m.closed:
			m.mu.Unlock()
			_ = s.cs.Close()
			return nil, fail("backend closed", nil)
		}
		m.sess = s
		s.busy++
		m.mu.Unlock()
		go m.watch(s)
		return s, nil
	}
}

// live returns m.sess, counted busy, when it is alive and not being closed;
// else it forgets it (recording a death). m.mu is held.
func (m *MCP) live() (*mcpSession, bool) {
	s := m.sess
	if s == nil {
		return nil, false
	}
	select {
	case <-s.dead:
		m.sess = nil
		s.mu.Lock()
		died := !s.stopped
		s.mu.Unlock()
		if died {
			m.died(s)
		}
		return nil, false
	default:
	}
	s.mu.Lock()
	stopping := s.stopped // the idle watch is closing it
	if !stopping {
		s.busy++
	}
	s.mu.Unlock()
	if stopping {
		m.sess = nil
		return nil, false
	}
	return s, true
}

// ctxFailure is the failure of a call whose ctx ended while it waited.
func (m *MCP) ctxFailure(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fail(fmt.Sprintf("timed out after %v", m.Timeout), ctx.Err())
	}
	return fail("cancelled", ctx.Err())
}

// died records a server death for the backoff; m.mu is held.
func (m *MCP) died(s *mcpSession) {
	m.restarts.died(time.Now())
	if s != nil && s.buf != nil {
		s.stderr.mu.Lock()
		tail := string(s.buf.b)
		s.stderr.mu.Unlock()
		m.log().Warn("mcp server died; restarting on the next call", "server", m.target(), "stderr", tail)
	}
}

func (m *MCP) open(ctx context.Context) (*mcpSession, error) {
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	s := &mcpSession{dead: make(chan struct{}), lastUse: time.Now()}
	var server *procGroup // stdio: the server, leader of its process group
	var t mcp.Transport
	switch {
	case m.URL != "":
		hc := m.HTTPClient
		if hc == nil {
			hc = &http.Client{
				Transport: &http.Transport{
					// Local endpoints only: no proxy from the environment.
					DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
					IdleConnTimeout: idleConnTimeout,
				},
				CheckRedirect: noRedirects,
			}
		}
		// The SDK reads a JSON answer whole: every answer body (a stream of
		// events included) is cut at the bound A2A uses.
		bounded := *hc
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		bounded.Transport = mcpBodies{rt: rt, max: int64(mcpMessageLimit(m.maxOutput())), listMax: int64(listPageLimit(m.maxOutput()))}
		t = &mcp.StreamableClientTransport{Endpoint: m.URL, HTTPClient: &bounded, MaxRetries: -1, DisableStandaloneSSE: true}
	case len(m.Argv) > 0:
		var env []string
		for _, kv := range (&Exec{Env: m.Env, EnvAllow: m.EnvAllow}).environ(Invocation{}, os.LookupEnv) {
			if !strings.HasPrefix(kv, "TREATY_") {
				env = append(env, kv)
			}
		}
		// Not CommandContext: the process outlives the call that started it.
		cmd := exec.Command(m.Argv[0], m.Argv[1:]...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		s.buf = &limitedBuffer{max: mcpStderr}
		s.stderr = &lockedWriter{w: s.buf}
		cmd.Stderr = s.stderr
		server = newProcGroup(cmd, m.signal)
		st, err := startStdio(server, mcpMessageLimit(m.maxOutput()), listPageLimit(m.maxOutput()), &s.listing, &s.over)
		if err != nil {
			return nil, err
		}
		t = st
	default:
		return nil, errors.New("mcp: neither a command nor a url")
	}
	// No client capabilities: no roots, sampling or elicitation, so the server
	// cannot ask the node for anything.
	c := mcp.NewClient(&mcp.Implementation{Name: "treaty", Version: "1"}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	cs, err := c.Connect(ctx, t, nil)
	if err != nil {
		if s.over.Load() {
			return nil, fmt.Errorf("%w: %w", mcpframe.ErrTooLarge, err)
		}
		return nil, err
	}
	s.cs = cs
	go func() {
		_ = cs.Wait()
		if server != nil {
			// The SDK ends the server alone; what a launcher (npx, a shell
			// script) started is in its group and must end with it. The
			// transport's Close (stdioServer) has usually reaped the
			// server by now, killing the group first; this kill is for
			// when it has not, and is not sent after the reap, when the
			// group's id may be another's (procGroup).
			server.kill()
		}
		close(s.dead)
	}()
	return s, nil
}

// watch closes s once it has been idle for idleAfter.
func (m *MCP) watch(s *mcpSession) {
	idle := m.idleAfter
	if idle <= 0 {
		idle = mcpIdle
	}
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-t.C:
		}
		s.mu.Lock()
		left := idle - time.Since(s.lastUse)
		if s.busy == 0 && left <= 0 {
			s.stopped = true
			s.mu.Unlock()
			m.mu.Lock()
			if m.sess == s {
				m.sess = nil
			}
			m.mu.Unlock()
			_ = s.cs.Close()
			return
		}
		s.mu.Unlock()
		t.Reset(max(left, idle/4))
	}
}

// release ends one use of s; a use that worked ends the backoff.
func (m *MCP) release(s *mcpSession, ok bool) {
	s.mu.Lock()
	s.busy--
	s.lastUse = time.Now()
	s.mu.Unlock()
	if ok {
		m.mu.Lock()
		m.restarts.healthy()
		m.mu.Unlock()
	}
}

// Describe returns the tool's description and input schema from tools/list,
// bounded (MaxDescribed, MaxDescribedSchema) and with control and format
// characters dropped from the description.
func (m *MCP) Describe(ctx context.Context) (string, map[string]any, error) {
	s, err := m.session(ctx)
	if err != nil {
		return "", nil, err
	}
	defer m.release(s, false)
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	var cursor string
	for range 100 { // pages; a server that pages forever is refused
		// A page may be longer than a call's answer (MaxListPage): the
		// HTTP answer to this request is bounded by it, and a stdio
		// server's messages while it is in flight.
		cut := new(atomic.Bool)
		s.listing.Add(1)
		res, err := s.cs.ListTools(context.WithValue(ctx, listingKey{}, cut), &mcp.ListToolsParams{Cursor: cursor})
		s.listing.Add(-1)
		if err != nil && (s.over.Load() || cut.Load()) {
			if s.over.Load() { // a stdio session ends with it
				m.drop(s)
			}
			return "", nil, fmt.Errorf("mcp: tools/list: %w", listPageTooLarge(listPageLimit(m.maxOutput()), err))
		}
		if err != nil {
			return "", nil, fmt.Errorf("mcp: tools/list: %w", err)
		}
		for _, tool := range res.Tools {
			if tool.Name != m.Tool {
				continue
			}
			var schema map[string]any
			if tool.InputSchema != nil {
				b, err := json.Marshal(tool.InputSchema)
				if err != nil {
					return "", nil, fmt.Errorf("mcp: tool %s: input schema: %w", m.Tool, err)
				}
				if len(b) > MaxDescribedSchema {
					m.log().Warn("mcp: the tool's input schema is over the limit and not used", "server", m.target(), "tool", m.Tool, "bytes", len(b), "limit", MaxDescribedSchema)
				} else if err := json.Unmarshal(b, &schema); err != nil {
					return "", nil, fmt.Errorf("mcp: tool %s: input schema is not an object: %w", m.Tool, err)
				}
			}
			return describedText(tool.Description), schema, nil
		}
		if res.NextCursor == "" {
			break
		}
		cursor = res.NextCursor
	}
	return "", nil, fmt.Errorf("mcp: server %s has no tool %q", m.target(), m.Tool)
}

// Call calls the tool once with the input as its arguments.
func (m *MCP) Call(ctx context.Context, inv Invocation) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	in := bytes.TrimSpace(inv.Input)
	if len(in) == 0 {
		in = []byte("{}")
	}
	if in[0] != '{' {
		return nil, fail("mcp tool input must be a JSON object", nil)
	}
	s, err := m.session(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: m.Tool, Arguments: json.RawMessage(in)})
	m.release(s, err == nil && !res.IsError)
	switch {
	case err != nil && (s.over.Load() || bodyCut(err)):
		m.drop(s)
		return nil, messageTooLarge(mcpMessageLimit(m.maxOutput()), err)
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fail(fmt.Sprintf("timed out after %v", m.Timeout), ctx.Err())
	case ctx.Err() != nil:
		return nil, fail("cancelled", ctx.Err())
	case err != nil:
		if errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, mcp.ErrSessionMissing) {
			// An HTTP server that restarted forgot the session: open a new one next time.
			m.drop(s)
		}
		return nil, fail("mcp call failed", err)
	}
	return m.answer(res)
}

// answer turns a tool result into the call's JSON output.
func (m *MCP) answer(res *mcp.CallToolResult) ([]byte, error) {
	var text strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			text.WriteString(t.Text)
		}
	}
	if res.IsError {
		detail := text.String()
		if len(detail) > 512 {
			detail = detail[:512]
		}
		return nil, fail("tool reported an error", errors.New(detail))
	}
	var out []byte
	switch {
	case res.StructuredContent != nil:
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return nil, fail("tool returned invalid structured content", err)
		}
		out = b
	case json.Valid([]byte(strings.TrimSpace(text.String()))) && strings.TrimSpace(text.String()) != "":
		out = []byte(strings.TrimSpace(text.String()))
	default:
		b, err := json.Marshal(map[string]string{"text": text.String()})
		if err != nil {
			return nil, fail("tool returned text that cannot be encoded", err)
		}
		out = b
	}
	if len(out) > m.maxOutput() {
		return nil, outputTooLarge(m.maxOutput())
	}
	return out, nil
}

// drop forgets s, a session that no longer works, and closes it; the next
// call opens a new one, with the backoff of a death.
func (m *MCP) drop(s *mcpSession) {
	m.mu.Lock()
	if m.sess == s {
		m.sess = nil
		m.died(s)
	}
	m.mu.Unlock()
	_ = s.cs.Close()
}

// Close stops the server (or the HTTP session), cutting one being opened;
// later calls fail.
func (m *MCP) Close() error {
	m.mu.Lock()
	s := m.sess
	m.sess, m.closed = nil, true
	if m.end != nil {
		m.end() // a session being opened
	}
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	return s.cs.Close()
}

// listingKey marks the context of a tools/list request; its value, an
// *atomic.Bool, is set when the answer's body is cut at the page bound.
type listingKey struct{}

// bodyCut reports whether err comes from an HTTP answer cut at the bound
// (mcpBodies). The SDK keeps the cause in its error's chain or, in some
// paths, only in its text.
func bodyCut(err error) bool {
	return errors.Is(err, errBodyTooLarge) || strings.Contains(err.Error(), errBodyTooLarge.Error())
}

// mcpBodies bounds an HTTP MCP server's every answer body (a stream of events
// included) at max, and a tools/list answer's at listMax.
type mcpBodies struct {
	rt           http.RoundTripper
	max, listMax int64
}

func (t mcpBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if cut, ok := r.Context().Value(listingKey{}).(*atomic.Bool); ok {
		resp.Body = &capped{rc: resp.Body, left: t.listMax, cut: cut}
	} else {
		resp.Body = &capped{rc: resp.Body, left: t.max}
	}
	return resp, nil
}
