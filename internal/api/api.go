// Package api serves the local agent API: HTTP/1.1 JSON on the unix socket
// treaty.sock (mode 0600) in the node's home. Only processes that can open the
// socket file, i.e. the node's own user, can use it; it never listens on TCP.
//
// Every error answer is {"error":{"stage":"...","reason":"...","remote":bool}}
// so that clients can map it back to a refusal and the CLI to its exit code.
// The request and answer types are in the public package localapi; the
// reference is docs/api.md and GET /v1/openapi.json.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
	"github.com/treaty-dev/treaty/localapi"
)

// The local API's contract lives in the public package localapi; these
// aliases keep the names the rest of the repository uses.
const (
	SocketName      = localapi.SocketName
	MaxRequestBytes = localapi.MaxRequestBytes
)

type (
	CallRequest     = localapi.CallRequest
	CallResponse    = localapi.CallResponse
	StreamLine      = localapi.StreamLine
	Status          = localapi.Status
	PeerInfo        = localapi.PeerInfo
	ErrorBody       = localapi.ErrorBody
	TrustSetRequest = localapi.TrustSetRequest
)

// openAPI is the OpenAPI 3.1 description of this API, served at
// GET /v1/openapi.json. A string, so nothing can change it.
//
//go:embed openapi.json
var openAPI string

// idleTimeout closes a connection idle between requests, so a local process
// cannot hold the server's descriptors by opening connections and going quiet.
const idleTimeout = 2 * time.Minute

// maxHeaderBytes bounds a request's head: this API's requests carry a few
// short headers, and 1,024 connections with net/http's default (1 MiB) each
// would be 1 GiB. A larger head is answered 431 by net/http.
const maxHeaderBytes = 64 << 10

// Server serves one node's local API.
type Server struct {
	n   *node.Node
	log *slog.Logger
	srv *http.Server
	ln  net.Listener

	stall     atomic.Int64  // ioStall; tests shorten it
	slotWait  atomic.Int64  // ioStall; tests shorten it
	bodySlots chan struct{} // maxLargeBodies (stall.go)

	closeOnce sync.Once
	closeErr  error
}

// Listen binds HOME/treaty.sock with mode 0600. A stale socket left by a dead
// node is replaced; a live one is an error, so two nodes never share a home.
func Listen(n *node.Node, log *slog.Logger) (*Server, error) {
	path := filepath.Join(n.Home(), SocketName)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("api: another node is serving %s", path)
	}
	ln, err := listenUnix(path, nil) // replaces a stale socket
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{n: n, log: log, ln: newLimitListener(ln, defaultConnLimits, log), bodySlots: make(chan struct{}, maxLargeBodies)}
	s.stall.Store(int64(ioStall))
	s.slotWait.Store(int64(ioStall))
	// No WriteTimeout: /v1/stream lasts as long as its call; each write has
	// ioStall instead (stall.go).
	s.srv = &http.Server{Handler: s.bounded(s.routes()), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout,
		MaxHeaderBytes: maxHeaderBytes}
	return s, nil
}

// route is one endpoint of the local API; openapi.json documents each.
type route struct {
	method, path string
	h            http.HandlerFunc
}

func (s *Server) table() []route {
	return append([]route{
		{http.MethodGet, "/v1/status", s.status},
		{http.MethodGet, "/v1/peers", s.peers},
		{http.MethodGet, "/v1/caps", s.caps},
		{http.MethodPost, "/v1/call", s.call},
		{http.MethodPost, "/v1/stream", s.stream},
		{http.MethodPost, "/v1/trust/set", s.trustSet},
		{http.MethodGet, "/v1/openapi.json", serveOpenAPI},
	}, append(s.groupRoutes(), s.membershipRoutes()...)...) // groups.go, membership.go
}

// routes answers an unknown path (404) or method (405) with the same error
// body as every other refusal, so clients parse one error format.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	for _, rt := range s.table() {
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	RegisterPprof(mux, s.n)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusNotFound
		err := refusal.New(refusal.StageUsage, "no endpoint %s %s (see GET /v1/openapi.json)", r.Method, r.URL.Path)
		if methods, ok := allow[r.URL.Path]; ok {
			status = http.StatusMethodNotAllowed
			w.Header().Set("Allow", strings.Join(methods, ", "))
			err = refusal.New(refusal.StageUsage, "%s %s: method not allowed, use %s", r.Method, r.URL.Path, strings.Join(methods, ", "))
		}
		writeJSON(w, status, localapi.ErrorResponse{Error: errorBody(err)})
	})
	return mux
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, openAPI)
}

// Serve answers until ctx ends or Close.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-done:
		}
	}()
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// Close stops the server and removes the socket. It is idempotent: only the
// first call removes the socket, which by then may belong to another node.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
		os.Remove(filepath.Join(s.n.Home(), SocketName))
	})
	return s.closeErr
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	addr := ""
	if a := s.n.Addr(); a != nil {
		addr = a.String()
	}
	stale, _ := s.n.ConfigError()
	writeJSON(w, http.StatusOK, Status{ID: s.n.ID().String(), Name: s.n.Name(), Addr: addr, ConfigError: stale})
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	out := []PeerInfo{}
	for _, p := range s.n.Peers() {
		out = append(out, PeerInfo{Name: p.Name, ID: p.ID.String(), Addr: p.Addr, Breaker: p.Breaker, Source: s.n.PeerSource(p.ID), Unwitnessed: s.n.Unwitnessed(p.ID)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) caps(w http.ResponseWriter, r *http.Request) {
	q, err := params(r)
	if err != nil {
		writeError(w, refusal.New(refusal.StageUsage, "%v", err))
		return
	}
	caps, err := s.n.Caps(r.Context(), q.Get("peer"))
	if err != nil {
		writeError(w, err)
		return
	}
	if caps == nil {
		caps = []node.CapabilityInfo{}
	}
	writeJSON(w, http.StatusOK, struct {
		Capabilities []node.CapabilityInfo `json:"capabilities"`
	}{caps})
}

// decodeBody reads exactly one JSON object into v (parseBody); a body over
// MaxRequestBytes, or one parseBody refuses, is a usage refusal, answered here.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := readBody(http.MaxBytesReader(w, r.Body, MaxRequestBytes), r.ContentLength)
	if err == nil {
		err = parseBody(body, v)
	}
	if err != nil {
		writeError(w, refusal.New(refusal.StageUsage, "bad request body: %v", err))
		return false
	}
	return true
}

func decodeCall(w http.ResponseWriter, r *http.Request) (CallRequest, bool) {
	var req CallRequest
	if !decodeBody(w, r, &req) {
		return req, false
	}
	if len(req.Input) == 0 {
		req.Input = json.RawMessage("{}")
	}
	return req, true
}

func (s *Server) call(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeCall(w, r)
	if !ok {
		return
	}
	ctx, err := s.within(r, req.Within)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := s.n.Call(ctx, req.Peer, req.Capability, req.Input)
	if err != nil {
		writeError(w, err)
		return
	}
	writeCallAnswer(w, callAnswer{Output: validUTF8(res.Output), Receipt: res.Receipt, ElapsedMS: float64(res.Elapsed.Microseconds()) / 1000})
}

// validUTF8 replaces each invalid UTF-8 byte of a peer's JSON with U+FFFD:
// JSON text must be UTF-8, agents' decoders may refuse anything else, and
// encoding/json passes a json.RawMessage's bytes on unchecked. In valid JSON
// such bytes can only be inside strings, so it stays valid.
func validUTF8(b json.RawMessage) json.RawMessage {
	if utf8.Valid(b) {
		return b
	}
	return bytes.ToValidUTF8(b, []byte("\uFFFD"))
}

// callAnswer is CallResponse as this server writes it: the same JSON, with the
// receipt encoded once in place rather than marshalled, then checked and
// compacted again as a json.RawMessage. writeCallAnswer encodes it by hand
// (callanswer.go).
type callAnswer struct {
	Output    json.RawMessage `json:"output"`
	Receipt   wire.Receipt    `json:"receipt"`
	ElapsedMS float64         `json:"elapsed_ms"`
}

// within is r's context for a call made on behalf of the inbound call token
// names (a backend's TREATY_CALL), or r's own for no token. A token that
// names no call being served (it ended, was never issued, or was issued by
// another node) is refused: taking it for a direct call would let the call
// shed the delegation chain, and the limits on it, that its sender asked for.
func (s *Server) within(r *http.Request, token string) (context.Context, error) {
	ctx := r.Context()
	if token == "" {
		return ctx, nil
	}
	if wctx := s.n.WithinCall(ctx, token); wctx != ctx {
		return wctx, nil
	}
	return nil, refusal.New(refusal.StageUsage, "within: no call this node is serving has that token (the call ended, or the token is wrong); omit within for a direct call")
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeCall(w, r)
	if !ok {
		return
	}
	ctx, err := s.within(r, req.Within)
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	err = s.n.Stream(ctx, req.Peer, req.Capability, req.Input, func(data json.RawMessage) error {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if err := enc.Encode(StreamLine{Data: validUTF8(data)}); err != nil {
			return err
		}
		// A client that does not take the line within ioStall fails the
		// flush, which ends the call.
		return rc.Flush()
	})
	if !started {
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	}
	line := StreamLine{End: true}
	if err != nil {
		line.Error = errorBody(err)
	}
	enc.Encode(line)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func errorBody(err error) *ErrorBody {
	var r *refusal.Error
	if errors.As(err, &r) {
		return &ErrorBody{Stage: r.Stage, Reason: r.Reason, Remote: r.Remote}
	}
	return &ErrorBody{Stage: refusal.StageInternal, Reason: err.Error()}
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, localapi.HTTPStatus(err), localapi.ErrorResponse{Error: errorBody(err)})
}

func (s *Server) trustSet(w http.ResponseWriter, r *http.Request) {
	var req TrustSetRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := s.n.SetTrust(req.Peer, node.TrustOverride{Floor: req.Floor, Ceiling: req.Ceiling, Lift: req.Lift}); err != nil {
		if errors.Is(err, trust.ErrFloorAboveCeiling) {
			err = refusal.Wrap(refusal.StageUsage, err) // the operator asked for bounds that cross
		}
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, localapi.OKResponse{OK: true})
}
