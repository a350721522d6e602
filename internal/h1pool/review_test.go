package h1pool

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// rawServer accepts connections on loopback TCP and runs serve on each one,
// in its own goroutine, until the test ends.
func rawServer(t *testing.T, serve func(c net.Conn, nth int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, n)
			}()
		}
	}()
	return ln.Addr().String()
}

func rawPool(t *testing.T, addr string) *Pool {
	t.Helper()
	p, err := New(Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		Header: []string{"Host", "test"}, MaxIdle: 4, IdleTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdle)
	return p
}

// TestStrayBytesAfterAnswer: a server that sends bytes after a whole answer
// (a body longer than its Content-Length, a second answer nobody asked for)
// must not have them read as the answer to the next request on that
// connection: the connection is not reused.
func TestStrayBytesAfterAnswer(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn, nth int) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if nth == 1 {
				// One write: the answer and a forged one after it.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"+
					"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\"forged\"")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n\"real\"")
		}
	})
	p := rawPool(t, addr)
	if _, body, err := p.Do(t.Context(), post(`{}`), 64); err != nil || string(body) != "{}" {
		t.Fatalf("first answer %q, %v", body, err)
	}
	_, body, err := p.Do(t.Context(), post(`{}`), 64)
	if err != nil || string(body) != `"real"` {
		t.Fatalf("second answer %q, %v: want the server's real answer, not bytes left from the first", body, err)
	}
}
