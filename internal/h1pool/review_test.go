package h1pool

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// TestHeadBounded: an answer whose head never ends (an endless header line,
// or informational answers without end) is cut at maxHead bytes: memory
// stays bounded and the connection closes.
func TestHeadBounded(t *testing.T) {
	t.Parallel()
	const sent = 32 << 20
	for name, head := range map[string]string{
		"long line": "HTTP/1.1 200 OK\r\nX-Long: ",
		"1xx":       "",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var written atomic.Int64
			addr := rawServer(t, func(c net.Conn, _ int) {
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				if _, err := io.WriteString(c, head); err != nil {
					return
				}
				chunk := strings.Repeat("a", 32<<10)
				if head == "" {
					chunk = strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 1<<10)
				}
				for written.Load() < sent {
					n, err := io.WriteString(c, chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			p := rawPool(t, addr)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, _, err := p.Do(ctx, post(`{}`), 64)
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("endless head: %v, want an error before the deadline", err)
			}
			if n := written.Load(); n >= sent {
				t.Fatalf("the pool read %d bytes of an answer's head: want it cut near %d", n, maxHead)
			}
		})
	}
}

// TestRefusedFraming: a method with a tab, and a header that sets the
// request's own framing (Content-Length, Transfer-Encoding), are refused
// before anything is dialled: the pool writes the body's length itself.
func TestRefusedFraming(t *testing.T) {
	t.Parallel()
	p, err := New(Config{Dial: func(context.Context) (net.Conn, error) { return nil, errors.New("dialled") }, MaxIdle: 1, IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{
		{Method: "GET\t/evil", Target: "/"},
		{Method: "POST", Target: "/", Header: []string{"Transfer-Encoding", "chunked"}, Body: []byte("0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")},
		{Method: "POST", Target: "/", Header: []string{"content-length", "0"}, Body: []byte("x")},
	} {
		if _, _, err := p.Do(t.Context(), req, 64); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v, want ErrMalformed", req, err)
		}
	}
	if _, err := New(Config{Dial: p.dial, MaxIdle: 1, IdleTimeout: time.Second, Header: []string{"Transfer-Encoding", "chunked"}}); err == nil {
		t.Fatal("Config.Header with Transfer-Encoding accepted")
	}
}

// heldConn buffers its writes while held, so that two TLS records leave in
// one segment.
type heldConn struct {
	net.Conn
	held bool
	buf  []byte
}

func (h *heldConn) Write(b []byte) (int, error) {
	if h.held {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

func (h *heldConn) release() error {
	h.held = false
	_, err := h.Conn.Write(h.buf)
	return err
}

// TestStrayTLSRecordAfterAnswer: over TLS, bytes a server sent after a whole
// answer may sit decrypted or undecrypted inside the TLS layer, out of sight
// of the reader's buffer and of a peek at the socket; they must still not be
// read as the next request's answer.
func TestStrayTLSRecordAfterAnswer(t *testing.T) {
	t.Parallel()
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	srvCfg := ts.TLS.Clone()
	roots := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	ts.Close()
	var conns atomic.Int32
	addr := rawServer(t, func(c net.Conn, nth int) {
		conns.Add(1)
		hc := &heldConn{Conn: c}
		tc := tls.Server(hc, srvCfg)
		br := bufio.NewReader(tc)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if nth == 1 {
				hc.held = true // two records, one segment
				io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
				io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\"forged\"")
				if hc.release() != nil {
					return
				}
				continue
			}
			io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n\"real\"")
		}
	})
	p, err := New(Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			raw, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tc, nil
		},
		Header: []string{"Host", "test"}, MaxIdle: 4, IdleTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdle)
	if _, body, err := p.Do(t.Context(), post(`{}`), 64); err != nil || string(body) != "{}" {
		t.Fatalf("first answer %q, %v", body, err)
	}
	_, body, err := p.Do(t.Context(), post(`{}`), 64)
	if err != nil || string(body) != `"real"` {
		t.Fatalf("second answer %q, %v: want the server's real answer, not bytes left from the first", body, err)
	}
	// A quiet TLS connection is still reused.
	if _, body, err := p.Do(t.Context(), post(`{}`), 64); err != nil || string(body) != `"real"` {
		t.Fatalf("third answer %q, %v", body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections for three requests, want 2: the quiet one reused", n)
	}
}

// TestRefusedMethods: HEAD and CONNECT, whose answers this reader cannot
// frame (a HEAD answer announces a body it does not send), are refused
// before anything is dialled instead of waiting out the deadline.
func TestRefusedMethods(t *testing.T) {
	t.Parallel()
	p, err := New(Config{Dial: func(context.Context) (net.Conn, error) { return nil, errors.New("dialled") }, MaxIdle: 1, IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"HEAD", "head", "CONNECT"} {
		if _, _, err := p.Do(t.Context(), Request{Method: m, Target: "/"}, 64); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: %v, want ErrMalformed", m, err)
		}
	}
}

// TestNoBoundMax: math.MaxInt as the body's bound ("no bound") reads the
// whole body and leaves the connection at the next answer; a negative bound
// is refused before anything is sent.
func TestNoBoundMax(t *testing.T) {
	t.Parallel()
	s := newServer(t, "tcp", echo)
	p := newPool(t, s, Config{})
	for i := range 2 {
		_, body, err := p.Do(t.Context(), post(`{"i":1}`), math.MaxInt)
		if err != nil || string(body) != `{"i":1}` {
			t.Fatalf("request %d with no bound: %q, %v", i, body, err)
		}
	}
	if _, _, err := p.Do(t.Context(), post(`{}`), -1); err == nil {
		t.Fatal("a negative bound accepted")
	}
}
