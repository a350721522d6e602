package api

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/refusal"
)

// ioStall bounds the time a local client may take to send a request's body
// (all of it) and to take each write of an answer, a stream's lines one by
// one. A client that trickles a body, or stops reading an answer or a stream,
// would otherwise hold its goroutine, its connection and, for a call or a
// stream, the outbound call and its budget slot for as long as it liked. A
// stream that keeps being read is never cut.
const ioStall = 30 * time.Second

// smallBody is the largest request body read without a large-body slot.
const smallBody = 64 << 10

// maxLargeBodies bounds the request bodies over smallBody (or of unknown
// length) read at once: reading and decoding a body of MaxRequestBytes takes
// about three times its size, and 1,024 connections sending one each would be
// 48 GiB. A request that finds no slot free within ioStall is refused, stage
// budget.
const maxLargeBodies = 4

// bounded applies the server's stall bound and large-body slots to every
// request.
func (s *Server) bounded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stall := time.Duration(s.stall.Load())
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			b := &bodyDeadline{ReadCloser: r.Body, rc: rc}
			if r.ContentLength < 0 || r.ContentLength > smallBody {
				if !s.largeBodySlot(w, r) {
					return
				}
				b.release = sync.OnceFunc(func() { <-s.bodySlots })
				defer b.release()
			}
			rc.SetReadDeadline(time.Now().Add(stall))
			r.Body = b
		}
		h.ServeHTTP(&stallWriter{ResponseWriter: w, rc: rc, stall: stall}, r)
	})
}

// largeBodySlot takes a slot for reading a large body, or answers a refusal.
func (s *Server) largeBodySlot(w http.ResponseWriter, r *http.Request) bool {
	t := time.NewTimer(time.Duration(s.slotWait.Load()))
	defer t.Stop()
	select {
	case s.bodySlots <- struct{}{}:
		return true
	case <-t.C:
		writeError(w, refusal.New(refusal.StageBudget, "the local API is reading %d large request bodies (over %d KiB) already; retry", maxLargeBodies, smallBody>>10))
	case <-r.Context().Done():
	}
	// The body is left unread: the connection cannot carry another request.
	w.Header().Set("Connection", "close")
	return false
}

// bodyDeadline lifts the read deadline once the body has been read: the
// server then reads on only to notice that the client went away, which
// cancels the request's context, and must not take a deadline for that.
// It gives back a large body's slot as soon as the body is read or failed.
type bodyDeadline struct {
	io.ReadCloser
	rc      *http.ResponseController
	release func() // nil for a small body
	done    bool
}

func (b *bodyDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if err == io.EOF {
			b.rc.SetReadDeadline(time.Time{})
		}
		if b.release != nil {
			b.release()
		}
	}
	return n, err
}

// stallWriter gives each write of an answer, and each flush, stall to
// complete.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (w *stallWriter) Write(b []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	return w.ResponseWriter.Write(b)
}

func (w *stallWriter) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	w.rc.Flush()
}

// FlushError is Flush that says whether the bytes went out.
func (w *stallWriter) FlushError() error {
	w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	return w.rc.Flush()
}

func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
