package h1pool

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
)

// xReader is a body of n bytes ('x'), or endless when n < 0, that allocates
// nothing as it is read; read counts the bytes handed out.
type xReader struct{ n, read int64 }

func (r *xReader) Read(b []byte) (int, error) {
	if r.n >= 0 && r.read >= r.n {
		return 0, io.EOF
	}
	if r.n >= 0 {
		b = b[:min(int64(len(b)), r.n-r.read)]
	}
	for i := range b {
		b[i] = 'x'
	}
	r.read += int64(len(b))
	return len(b), nil
}

// allocated is the bytes the heap handed out while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestBodyAllocation: reading an answer's body allocates at most about the
// bound (or the body's length) plus sizeHint, whatever the server sends. A
// refused body of no announced length allocated about six times the bound
// before, grown by append; an announced length over the bound was read up
// to the bound. Not parallel: it measures the whole heap.
func TestBodyAllocation(t *testing.T) {
	const bound = 8 << 20
	const slack = 64 << 10 // chunk headers, the error, the runtime's own
	for _, c := range []struct {
		name      string
		announced int64 // -1: none
		sent      int64 // -1: endless
		tooLarge  bool
		most      uint64 // bytes allocated at most
		readMost  int64  // bytes read at most
	}{
		{name: "endless, no length", announced: -1, sent: -1, tooLarge: true, most: bound + slack, readMost: bound + 1},
		{name: "announced over the bound", announced: bound + 1, sent: -1, tooLarge: true, most: slack, readMost: 0},
		{name: "announced huge", announced: 1 << 62, sent: -1, tooLarge: true, most: slack, readMost: 0},
		{name: "announced within", announced: bound - 5, sent: bound - 5, most: bound + sizeHint + slack, readMost: bound},
		{name: "announced small", announced: 100, sent: 100, most: slack, readMost: 100},
		{name: "at the bound, no length", announced: -1, sent: bound, most: 2*bound + slack, readMost: bound},
	} {
		r := &xReader{n: c.sent}
		var b []byte
		var err error
		got := allocated(func() { b, err = readBody(r, c.announced, bound) })
		if c.tooLarge != errors.Is(err, ErrTooLarge) || !c.tooLarge && (err != nil || int64(len(b)) != c.sent) {
			t.Errorf("%s: %d bytes, %v", c.name, len(b), err)
		}
		if got > c.most {
			t.Errorf("%s: allocated %d bytes (%.1f times the bound), want at most %d", c.name, got, float64(got)/bound, c.most)
		}
		if r.read > c.readMost {
			t.Errorf("%s: read %d bytes, want at most %d", c.name, r.read, c.readMost)
		}
	}
}

// TestBodyCut: a body that ends before its announced length, or is cut by
// the connection, fails with ErrBody whatever its length, and one that ends
// where it said is kept whole.
func TestBodyCut(t *testing.T) {
	for _, announced := range []int64{10, sizeHint - 1, sizeHint + 10, 3 * sizeHint} {
		for _, sent := range []int64{0, announced / 2, announced - 1, announced} {
			b, err := readBody(&xReader{n: sent}, announced, 4*sizeHint)
			if sent < announced && !errors.Is(err, io.ErrUnexpectedEOF) || sent == announced && (err != nil || int64(len(b)) != sent) {
				t.Fatalf("announced %d, sent %d: %d bytes, %v", announced, sent, len(b), err)
			}
		}
	}
	// Over HTTP: net/http's reader fails the cut body itself.
	addr := rawServer(t, func(c net.Conn, nth int) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(2*sizeHint) + "\r\n\r\n"))
		c.Write(make([]byte, sizeHint+5))
		c.Close()
	})
	p := rawPool(t, addr)
	if _, _, err := p.Do(context.Background(), Request{Method: "GET", Target: "/"}, 4*sizeHint); !errors.Is(err, ErrBody) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut body: %v", err)
	}
}
