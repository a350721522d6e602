package api_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// ask sends GET /v1/status on c and returns the answer's status and error
// body, if any.
func ask(t *testing.T, c net.Conn, br *bufio.Reader) (int, *localapi.ErrorBody) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: treaty\r\n\r\n"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		var s localapi.Status
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, nil
	}
	var er localapi.ErrorResponse
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil || er.Error == nil {
		t.Fatalf("answer %d is not an error body: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, er.Error
}

func dialSock(t *testing.T, e *env) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(e.home, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// TestConnectionCap: the socket holds at most a bounded number of
// connections, per process and in all; one over is answered 403, stage
// budget, and closed, and a closed connection frees its slot. Before, every
// connection was served: a local process could hold as many descriptors and
// goroutines of the node as it liked.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	e := start(t, "acme")

	t.Run("per process", func(t *testing.T) {
		e.srv.ConnLimitsForTest(100, 3)
		var held []net.Conn
		for range 3 {
			c, br := dialSock(t, e)
			if code, _ := ask(t, c, br); code != 200 {
				t.Fatalf("connection under the cap answered %d", code)
			}
			held = append(held, c)
		}
		c, br := dialSock(t, e)
		code, eb := ask(t, c, br)
		if code != 403 || eb.Stage != localapi.StageBudget || !strings.Contains(eb.Reason, "from process") {
			t.Fatalf("4th connection = %d %+v, want 403 budget naming the process", code, eb)
		}
		// The Go client gets a typed refusal (exit 3).
		_, err := e.cl.Status(t.Context())
		wantRefusal(t, err, localapi.StageBudget, false, localapi.ExitDenied)
		// A closed connection frees its slot.
		held[0].Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, br := dialSock(t, e)
			if code, _ := ask(t, c, br); code == 200 {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatal("a closed connection's slot was not freed")
			}
			runtime.Gosched()
		}
		for _, c := range held {
			c.Close()
		}
	})

	t.Run("in all", func(t *testing.T) {
		e.srv.ConnLimitsForTest(2, 100)
		for _, want := range []int{200, 200, 403} {
			deadline := time.Now().Add(10 * time.Second)
			for {
				c, br := dialSock(t, e)
				code, eb := ask(t, c, br)
				if code == want && (want == 200 || eb.Stage == localapi.StageBudget && strings.Contains(eb.Reason, "all processes")) {
					break
				}
				// Connections of the previous subtest may still be closing.
				c.Close()
				if time.Now().After(deadline) {
					t.Fatalf("connection answered %d %+v, want %d", code, eb, want)
				}
				runtime.Gosched()
			}
		}
	})
}

// TestManyIdleConnections: a thousand idle connections cost the node a
// bounded number of goroutines, not one each.
func TestManyIdleConnections(t *testing.T) {
	e := start(t, "acme")
	e.srv.ConnLimitsForTest(16, 16)
	base := runtime.NumGoroutine()
	for range 1000 {
		c, err := net.Dial("unix", filepath.Join(e.home, localapi.SocketName))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// Once the server accepted them all, one more connection is refused with
	// an answer (while 64 others are being refused, it is closed unanswered).
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("unix", filepath.Join(e.home, localapi.SocketName))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: treaty\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil && resp.StatusCode == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal answer over the cap: %v", err)
		}
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > base+16+64+50 {
		t.Fatalf("%d goroutines with 1000 idle connections (%d before)", n, base)
	}
}
