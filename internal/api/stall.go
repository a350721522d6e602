package api

import (
	"io"
	"net/http"
	"time"
)

// ioStall bounds the time a local client may take to send a request's body
// (all of it) and to take each write of an answer, a stream's lines one by
// one. A client that trickles a body, or stops reading an answer or a stream,
// would otherwise hold its goroutine, its connection and, for a call or a
// stream, the outbound call and its budget slot for as long as it liked. A
// stream that keeps being read is never cut.
const ioStall = 30 * time.Second

// bounded applies the server's stall bound to every request.
func (s *Server) bounded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stall := time.Duration(s.stall.Load())
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			rc.SetReadDeadline(time.Now().Add(stall))
			r.Body = &bodyDeadline{ReadCloser: r.Body, rc: rc}
		}
		h.ServeHTTP(&stallWriter{ResponseWriter: w, rc: rc, stall: stall}, r)
	})
}

// bodyDeadline lifts the read deadline once the body has been read: the
// server then reads on only to notice that the client went away, which
// cancels the request's context, and must not take a deadline for that.
type bodyDeadline struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *bodyDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
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
