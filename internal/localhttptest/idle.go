package localhttptest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// IdleClosed fails t unless the server at the other end of c answers a
// keep-alive GET of path and then, with nothing more sent, closes c by
// itself within 5 s: a local process must not hold the server's connections
// (and descriptors) by opening them and going quiet. The caller sets the
// server's idle timeout well under 5 s.
func IdleClosed(t testing.TB, c net.Conn, host, path string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatalf("GET %s: the server closed the connection after one answer; want it kept alive", path)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle keep-alive connection: %v; want it closed by the server", err)
	}
}
