package h1pool

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzAnswer: whatever bytes a server answers with, reading them neither
// panics nor returns more than max bytes (a longer body is ErrTooLarge), and a connection is kept for reuse
// only after a whole answer whose end the framing told.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.0 200 OK\r\n\r\n{\"a\":1}",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"HTTP/1.1 500 Oops\r\nContent-Length: 99999999999\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n" + strings.Repeat("x", 65),
		"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + strings.Repeat("x", 64),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + strings.Repeat("x", 64) + "\r\n1\r\nx\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\n" + strings.Repeat("x", 65),
		"garbage",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
	} {
		f.Add([]byte(seed))
	}
	const max = 64
	p := &Pool{head: "Host: 127.0.0.1\r\n"}
	req := &Request{Method: "POST", Target: "/", Header: []string{"Treaty-Capability", "x"}, Body: []byte(`{}`)}
	f.Fuzz(func(t *testing.T, answer []byte) {
		cr := &capReader{r: bytes.NewReader(answer), left: -1}
		c := &conn{cr: cr, br: bufio.NewReader(cr), bw: bufio.NewWriter(io.Discard)}
		_, out, reuse, err := p.exchange(c, req, max)
		if len(out) > max || errors.Is(err, ErrTooLarge) && out != nil {
			t.Fatalf("kept %d bytes, max %d, %v", len(out), max, err)
		}
		if reuse && err != nil {
			t.Fatalf("connection kept after %d bytes, %v", len(out), err)
		}
		if reuse && c.br.Buffered() > 0 {
			t.Fatalf("connection kept with %d bytes after the answer", c.br.Buffered())
		}
	})
}
