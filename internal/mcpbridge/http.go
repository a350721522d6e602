package mcpbridge

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TokenFile is the file in a home that holds the bearer token of
// `treaty mcp --http` (mode 0600).
const TokenFile = "mcp.token"

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
		if _, err := f.WriteString(tok + "\n"); err != nil {
			f.Close()
			os.Remove(path)
			return "", fmt.Errorf("mcpbridge: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			os.Remove(path)
			return "", fmt.Errorf("mcpbridge: write %s: %w", path, err)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("mcpbridge: create %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("mcpbridge: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("mcpbridge: %s has mode %v; it must be 0600 (chmod 600 it, or delete it to make a new token)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("mcpbridge: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return "", fmt.Errorf("mcpbridge: %s holds no usable token (at least 32 characters); delete it to make a new one", path)
	}
	return tok, nil
}

// IsLoopback reports whether addr (host:port) names a loopback address.
// Host names other than "localhost" are refused: what they resolve to can
// change after the check.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HTTPHandler serves the bridge as MCP streamable HTTP, refusing with 401
// every request without "Authorization: Bearer TOKEN". The SDK's DNS
// rebinding and cross-origin protections stay on.
func (b *Bridge) HTTPHandler(token string) (http.Handler, error) {
	if len(token) < 32 {
		return nil, errors.New("mcpbridge: HTTPHandler: token must be at least 32 characters")
	}
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.server },
		&mcp.StreamableHTTPOptions{Logger: b.log})
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="treaty"`)
			http.Error(w, "treaty mcp: missing or wrong bearer token (see mcp.token in the node's home)", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}), nil
}
