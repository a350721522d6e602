package api_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// TestRequestFraming: pipelined requests are answered in order, and framing
// tricks (chunked encodings, conflicting lengths, oversized heads) are
// answered with an error status, never a crash or a hang; the node serves on.
func TestRequestFraming(t *testing.T) {
	t.Parallel()
	e := start(t, "acme")
	sock := filepath.Join(e.home, localapi.SocketName)
	exchange := func(t *testing.T, req string, answers int) []int {
		t.Helper()
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go c.Write([]byte(req)) // may exceed the socket buffer: write while reading
		br := bufio.NewReader(c)
		var codes []int
		for range answers {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("after %d answers: %v", len(codes), err)
			}
			io.Copy(io.Discard, resp.Body)
			codes = append(codes, resp.StatusCode)
		}
		return codes
	}
	t.Run("pipelined", func(t *testing.T) {
		codes := exchange(t, strings.Repeat("GET /v1/status HTTP/1.1\r\nHost: treaty\r\n\r\n", 50), 50)
		for i, c := range codes {
			if c != 200 {
				t.Fatalf("answer %d = %d", i, c)
			}
		}
	})
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"chunked", "POST /v1/trust/set HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1d\r\n{\"peer\":\"nobody\",\"lift\":true}\r\n0\r\n\r\n", 403},
		{"chunked over 16 MiB", "POST /v1/call HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1000001\r\n" + strings.Repeat(" ", 1<<24+1) + "\r\n0\r\n\r\n", 400},
		{"chunk size overflow", "POST /v1/call HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n0\r\n\r\n", 400},
		{"length and chunked", "POST /v1/call HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two lengths", "POST /v1/call HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400},
		{"negative length", "POST /v1/call HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n{}", 400},
		{"huge length", "POST /v1/call HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n{}", 400},
		{"head over 64 KiB", "GET /v1/status HTTP/1.1\r\nHost: t\r\nX-Pad: " + strings.Repeat("x", 70<<10) + "\r\n\r\n", 431},
		{"NUL in the path", "GET /v1/sta\x00tus HTTP/1.1\r\nHost: t\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if codes := exchange(t, tc.req, 1); codes[0] != tc.want {
				t.Fatalf("answered %d, want %d", codes[0], tc.want)
			}
		})
	}
	if _, err := e.cl.Status(t.Context()); err != nil {
		t.Fatalf("the node stopped serving: %v", err)
	}
}
