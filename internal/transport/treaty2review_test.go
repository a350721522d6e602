package transport

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/framing"
)

// These tests come from a review of treaty/2 (ADR 29): each failed before
// the fix it names, over real transports on loopback.

// TestTreaty2InboxBounded: a body read slowly, never quite drained, is held
// within about its window, not in full. The inbox used to compact only when
// drained, so a consumer that stays behind kept every byte received.
func TestTreaty2InboxBounded(t *testing.T) {
	const size = 4 << 20
	most := make(chan int, 1)
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := r.Body.(*inbox)
		if !ok {
			http.Error(w, "not a treaty/2 body", http.StatusInternalServerError)
			return
		}
		peak, total := 0, 0
		buf := make([]byte, 1024)
		deadline := time.Now().Add(20 * time.Second)
		for {
			// Read only while more than one read is buffered: the inbox
			// is never drained when data arrives.
			for {
				b.mu.Lock()
				unread, over, c := len(b.buf)-b.off, b.end || b.err != nil, cap(b.buf)
				b.mu.Unlock()
				peak = max(peak, c)
				if unread > len(buf) || over || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Microsecond) // polls the inbox
			}
			n, err := b.Read(buf)
			total += n
			if err != nil {
				break
			}
		}
		most <- peak
		_, _ = io.WriteString(w, "ok")
	}), Config{}, Config{})
	if _, _, err := p.do(t, t.Context(), http.MethodPost, "/slow", bytes.Repeat([]byte("b"), size), nil); err != nil {
		t.Fatal(err)
	}
	if peak, limit := <-most, 2*framing.InitialWindow+framing.MaxData; peak > limit {
		t.Fatalf("inbox held up to %d bytes of a %d-byte body read slowly, want at most %d", peak, size, limit)
	}
}
