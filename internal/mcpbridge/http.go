package mcpbridge

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/treaty-dev/treaty/internal/homedir"
)

// TokenFile is the file in a home that holds the bearer token of
// `treaty mcp --http` (mode 0600).
const TokenFile = "mcp.token"

// LoadOrCreateToken returns the bearer token in HOME/mcp.token, creating it
// on first use (see homedir.LoadOrCreateToken).
func LoadOrCreateToken(home string) (string, error) {
	return homedir.LoadOrCreateToken(home, TokenFile)
}

// MaxRequestBytes bounds an HTTP request body; a larger one is answered 413.
const MaxRequestBytes = 4 << 20

// requestHeader carries, from HTTPHandler to the tool handlers, the key under
// which the HTTP request that brought a call is kept. The SDK runs a call
// under its session, not its request, and without an event store a call
// whose request is gone can never be answered: the call must end with it.
// Whatever a client sends in it is replaced.
const requestHeader = "Treaty-Bridge-Request"

// requestContext returns the context of the HTTP request that carried req,
// if it came over HTTPHandler. The SDK may dispatch a call only after its
// request has ended; serve sets the key of every POST and drops it when the
// request ends, so a key no longer kept is a request gone: a done context.
func (b *Bridge) requestContext(req *mcp.CallToolRequest) (context.Context, bool) {
	if req == nil || req.Extra == nil || req.Extra.Header == nil {
		return nil, false
	}
	key := req.Extra.Header.Get(requestHeader)
	if key == "" {
		return nil, false
	}
	if v, ok := b.requests.Load(key); ok {
		return v.(context.Context), true
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	return ended, true
}

// serve passes r to inner with r's context kept for the calls it carries.
func (b *Bridge) serve(inner http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		r.Header.Del(requestHeader)
		inner.ServeHTTP(w, r)
		return
	}
	key := rand.Text()
	r.Header.Set(requestHeader, key)
	b.requests.Store(key, r.Context())
	defer b.requests.Delete(key)
	inner.ServeHTTP(w, r)
}

// HTTPHandler serves the bridge as MCP streamable HTTP, refusing with 401
// every request without "Authorization: Bearer TOKEN". The SDK's DNS
// rebinding and cross-origin protections stay on. A session without a
// request for Options.SessionIdle is closed; past Options.MaxSessions
// sessions a request opening one more is refused with 503.
func (b *Bridge) HTTPHandler(token string) (http.Handler, error) {
	if len(token) < 32 {
		return nil, errors.New("mcpbridge: HTTPHandler: token must be at least 32 characters")
	}
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.server },
		&mcp.StreamableHTTPOptions{Logger: b.log, SessionTimeout: b.idle, MaxRequestBodyBytes: MaxRequestBytes})
	want := []byte("Bearer " + token)
	var mu sync.Mutex
	opening := 0 // requests opening a session, not yet counted by the server
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			// Nothing more is read: net/http would otherwise wait, without
			// a deadline, for the unread body before answering.
			http.NewResponseController(w).SetReadDeadline(time.Now())
			w.Header().Set("WWW-Authenticate", `Bearer realm="treaty"`)
			http.Error(w, "treaty mcp: missing or wrong bearer token (see mcp.token in the node's home)", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" {
			b.serve(inner, w, r)
			return
		}
		// A request opening a session holds a slot until it is answered, so
		// concurrent ones cannot overshoot; its session, once connected, is
		// briefly counted twice, which only errs towards refusing.
		mu.Lock()
		open := opening
		for range b.server.Sessions() {
			open++
		}
		if open >= b.maxSess {
			mu.Unlock()
			http.NewResponseController(w).SetReadDeadline(time.Now())
			w.Header().Set("Retry-After", "60")
			http.Error(w, fmt.Sprintf("treaty mcp: %d sessions are open, the limit; close one (HTTP DELETE) or wait until an idle one ends", b.maxSess), http.StatusServiceUnavailable)
			return
		}
		opening++
		mu.Unlock()
		defer func() { mu.Lock(); opening--; mu.Unlock() }()
		b.serve(inner, w, r)
	}), nil
}
