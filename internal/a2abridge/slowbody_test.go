package a2abridge

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

// refusedPromptly: requests without the token whose body never arrives are
// answered and their connections closed at once. net/http would otherwise
// wait for the unread body, with no deadline and before answering, so any
// local process could hold connections (and the server's file descriptors)
// for ever without knowing the token.
func refusedPromptly(t *testing.T, h http.Handler) {
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

func TestSlowBodyWithoutTokenRefusedPromptly(t *testing.T) {
	b, err := New(Options{Node: newFake(), URL: "http://127.0.0.1/"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.HTTPHandler(testToken)
	if err != nil {
		t.Fatal(err)
	}
	refusedPromptly(t, h)
}
