package a2abridge

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/treaty-dev/treaty/internal/homedir"
)

// TokenFile is the file in a home that holds the bearer token of
// `treaty a2a` (mode 0600).
const TokenFile = "a2a.token"

// MaxRequestBytes bounds a request body.
const MaxRequestBytes = 2 << 20

// LoadOrCreateToken returns the bearer token in HOME/a2a.token, creating it
// on first use (see homedir.LoadOrCreateToken).
func LoadOrCreateToken(home string) (string, error) {
	return homedir.LoadOrCreateToken(home, TokenFile)
}

// HTTPHandler serves the bridge: the Agent Card at
// /.well-known/agent-card.json and JSON-RPC at /. Every request, the card's
// included, needs "Authorization: Bearer TOKEN" (the card lists this node's
// peers, which is not for every local process), and a body is read up to
// MaxRequestBytes.
func (b *Bridge) HTTPHandler(token string) (http.Handler, error) {
	if len(token) < 32 {
		return nil, errors.New("a2abridge: HTTPHandler: token must be at least 32 characters")
	}
	mux := http.NewServeMux()
	mux.Handle(a2asrv.WellKnownAgentCardPath, a2asrv.NewAgentCardHandler(b))
	mux.Handle("/", a2asrv.NewJSONRPCHandler(b.handler))
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			// Nothing more is read: net/http would otherwise wait, without
			// a deadline, for the unread body before answering.
			http.NewResponseController(w).SetReadDeadline(time.Now())
			w.Header().Set("WWW-Authenticate", `Bearer realm="treaty"`)
			http.Error(w, "treaty a2a: missing or wrong bearer token (see "+TokenFile+" in the node's home)", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		mux.ServeHTTP(w, r)
	}), nil
}
