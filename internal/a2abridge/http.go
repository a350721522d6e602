package a2abridge

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/a2aproject/a2a-go/a2asrv"
)

// TokenFile is the file in a home that holds the bearer token of
// `treaty a2a` (mode 0600).
const TokenFile = "a2a.token"

// MaxRequestBytes bounds a request body.
const MaxRequestBytes = 2 << 20

// LoadOrCreateToken returns the bearer token kept in home, creating it (32
// random bytes, hex) on first use. A token file readable or writable by
// group or others is refused rather than trusted.
func LoadOrCreateToken(home string) (string, error) {
	path := filepath.Join(home, TokenFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		var raw [32]byte
		rand.Read(raw[:])
		tok := hex.EncodeToString(raw[:])
		_, werr := f.WriteString(tok + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return "", fmt.Errorf("a2abridge: write %s: %w", path, werr)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("a2abridge: create %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("a2abridge: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("a2abridge: %s has mode %v; it must be 0600 (chmod 600 it, or delete it to make a new token)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("a2abridge: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return "", fmt.Errorf("a2abridge: %s holds no usable token (at least 32 characters); delete it to make a new one", path)
	}
	return tok, nil
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
			w.Header().Set("WWW-Authenticate", `Bearer realm="treaty"`)
			http.Error(w, "treaty a2a: missing or wrong bearer token (see "+TokenFile+" in the node's home)", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		mux.ServeHTTP(w, r)
	}), nil
}
