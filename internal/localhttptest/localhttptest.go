// Package localhttptest holds checks shared by the tests of the node's local
// HTTP surfaces (treaty a2a, treaty mcp --http, treaty dashboard).
package localhttptest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// RefusedPromptly fails t unless h answers requests without its token whose
// body never arrives at once, with a 4xx, and closes their connections.
// net/http would otherwise wait for the unread body, with no deadline and
// before answering, so any local process could hold connections (and the
// server's file descriptors) for ever without knowing the token.
func RefusedPromptly(t testing.TB, h http.Handler) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", addr)
		conns = append(conns, c)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 4") {
			t.Fatalf("connection %d: %q, %v; want a refusal and the connection closed", i, b, err)
		}
	}
}
