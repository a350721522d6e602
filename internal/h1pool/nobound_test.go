package h1pool

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// TestNoBoundHugeAnnounced: with no bound (math.MaxInt), a server that
// announces an enormous length and sends a little more than sizeHint makes
// the pool allocate only about what it sent, and the cut body fails with
// ErrBody. The announced length bought one buffer of its size once sizeHint
// bytes had come: make panicked (MaxInt64+1 overflowed, 1<<50 is beyond the
// heap) or, for a length the heap could hold, the node ran out of memory.
func TestNoBoundHugeAnnounced(t *testing.T) {
	for _, announced := range []int64{math.MaxInt64, 1 << 50} {
		addr := rawServer(t, func(c net.Conn, nth int) {
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.FormatInt(announced, 10) + "\r\n\r\n"))
			c.Write(make([]byte, sizeHint+5))
			c.Close()
		})
		p := rawPool(t, addr)
		var err error
		got := allocated(func() {
			_, _, err = p.Do(context.Background(), Request{Method: "GET", Target: "/"}, math.MaxInt)
		})
		if !errors.Is(err, ErrBody) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("announced %d, sent %d: %v", announced, sizeHint+5, err)
		}
		if got > 8*sizeHint {
			t.Errorf("announced %d, sent %d: allocated %d bytes", announced, sizeHint+5, got)
		}
		// readBody alone, where a Content-Length need not have come
		// through net/http.
		b, err := readBody(&xReader{n: 3 * sizeHint}, announced, math.MaxInt)
		if !errors.Is(err, io.ErrUnexpectedEOF) || b != nil {
			t.Fatalf("readBody: announced %d, sent %d: %d bytes, %v", announced, 3*sizeHint, len(b), err)
		}
	}
	// A body whose length is announced and sent in full is kept whole.
	b, err := readBody(&xReader{n: 3*sizeHint + 7}, 3*sizeHint+7, math.MaxInt)
	if err != nil || len(b) != 3*sizeHint+7 {
		t.Fatalf("whole body: %d bytes, %v", len(b), err)
	}
}
