// Package mcpfake is a scriptable MCP server on loopback streamable HTTP for
// tests: it speaks just enough of the protocol (initialize, tools/list,
// tools/call) to be connected to, and lets a test choose the exact bytes of
// each answer, so that the bridges can be tried against a hostile or broken
// server (huge or malformed answers, odd schemas, answers that never come).
package mcpfake

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is one fake MCP server. Its fields may be changed while it runs.
type Server struct {
	URL string // the endpoint, http://127.0.0.1:PORT/mcp

	mu    sync.Mutex
	tools json.RawMessage                                 // the tools array of tools/list
	call  func(w http.ResponseWriter, id json.RawMessage) // answers tools/call; nil: a text result "ok"
	list  func(w http.ResponseWriter, id json.RawMessage) // overrides tools/list when set
	hang  string                                          // a method never answered
	lists atomic.Int64
}

// New starts a server listing tools (a JSON array of MCP tools) until t ends.
func New(t testing.TB, tools string) *Server {
	t.Helper()
	s := &Server{tools: json.RawMessage(tools)}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/mcp"
	return s
}

// SetTools replaces the tools listed from now on.
func (s *Server) SetTools(tools string) {
	s.mu.Lock()
	s.tools = json.RawMessage(tools)
	s.mu.Unlock()
}

// OnList answers tools/list with f instead of the tools set.
func (s *Server) OnList(f func(w http.ResponseWriter, id json.RawMessage)) {
	s.mu.Lock()
	s.list = f
	s.mu.Unlock()
}

// OnCall answers tools/call with f.
func (s *Server) OnCall(f func(w http.ResponseWriter, id json.RawMessage)) {
	s.mu.Lock()
	s.call = f
	s.mu.Unlock()
}

// Hang makes the server never answer method (until the client gives up).
func (s *Server) Hang(method string) {
	s.mu.Lock()
	s.hang = method
	s.mu.Unlock()
}

// Lists is how many tools/list requests arrived.
func (s *Server) Lists() int64 { return s.lists.Load() }

// Result writes a JSON-RPC answer to id with result, as application/json.
func Result(w http.ResponseWriter, id json.RawMessage, result string) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":`+result+`}`)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodDelete:
		return
	case http.MethodPost:
	default:
		http.Error(w, "no", http.StatusMethodNotAllowed)
		return
	}
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	if len(req.ID) == 0 { // a notification
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Mcp-Session-Id", "fake")
	s.mu.Lock()
	tools, list, call, hang := s.tools, s.list, s.call, s.hang
	s.mu.Unlock()
	if req.Method == hang {
		<-r.Context().Done()
		return
	}
	switch req.Method {
	case "initialize":
		Result(w, req.ID, `{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"fake","version":"1"}}`)
	case "tools/list":
		s.lists.Add(1)
		if list != nil {
			list(w, req.ID)
			return
		}
		Result(w, req.ID, `{"tools":`+string(tools)+`}`)
	case "tools/call":
		if call != nil {
			call(w, req.ID)
			return
		}
		Result(w, req.ID, `{"content":[{"type":"text","text":"ok"}]}`)
	default:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(req.ID)+`,"error":{"code":-32601,"message":"no such method"}}`)
	}
}
