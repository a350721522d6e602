package node

import (
	"net/http"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/wire"
)

// The node's edge: the only functions that put bytes on a connection to a peer.
// Inbound answers go out through reply, replyEmpty, acceptCall, setEvidence and
// openStream; outbound requests through roundTrip (outbound.go). Every body they
// send is a sanitize.Clean, which only the sanitizer makes, so nothing leaves
// unscrubbed. edge_test.go fails the build of the tests if any other function
// writes to a peer.

// reply signs and writes a response. It takes only sanitized bytes; the
// sanitizer's report (counts, never values) travels with it.
//
// The body is read in place (Peek): SignResponse hashes it and the
// ResponseWriter copies it into its buffer, neither keeps it.
func (in *inbound) reply(status int, clean sanitize.Clean) {
	setReportHeader(in.w.Header(), clean)
	clean.Peek(func(body []byte) {
		if err := wire.SignResponse(in.w.Header(), status, body, in.answerTo(), in.n.key, in.n.now()); err != nil {
			in.n.log.Error("sign response", "err", err)
			in.replyEmpty(http.StatusInternalServerError)
			return
		}
		in.w.Header().Set("Content-Type", "application/json")
		// The answer must reach the caller within call_timeout: one that stops
		// reading would otherwise hold the call and its concurrency slot for
		// ever. Left armed: the end of the stream disarms it.
		_ = http.NewResponseController(in.w).SetWriteDeadline(time.Now().Add(in.st.limits.CallTimeout))
		in.w.WriteHeader(status)
		in.w.Write(body)
	})
}

// replyEmpty answers with status and no body, for the rare fault where even a
// signed failure envelope cannot be made. Nothing of the request or our state
// leaves with it.
func (in *inbound) replyEmpty(status int) {
	in.w.WriteHeader(status)
}

// acceptCall tells the caller the call was accepted and is running (103 Early
// Hints, headers only): its time_to_first_byte ends here. No Flush: the 1xx
// goes out at once, and Flush would send a final 200.
//
// A caller that announced its time_to_first_byte gets the 103 only when the
// backend is still running after wire.AcceptDelay: a quick answer is its own
// first byte, and each side then handles one frame fewer. settle must be
// called once the backend has returned, before anything else is written.
func (in *inbound) acceptCall() (settle func()) {
	d := wire.AcceptDelay(in.r.Header)
	if d <= 0 {
		in.w.WriteHeader(http.StatusEarlyHints)
		return func() {}
	}
	var mu sync.Mutex
	settled := false
	t := time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if !settled {
			in.w.WriteHeader(http.StatusEarlyHints)
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		settled = true
		mu.Unlock()
	}
}

// setEvidence attaches our audit entry's index and signed checkpoint to the
// answer: public commitments of ours, never content.
func (in *inbound) setEvidence(idx uint64, cp audit.Checkpoint) {
	setAuditHeaders(in.w.Header(), idx, cp)
}

// cleanStream is a signed event stream to a peer that accepts only sanitized
// events. Each write must reach the peer within stall (limits.call_timeout):
// a peer that stops reading would otherwise hold the call, its concurrency
// slot and its handler for ever, long after the backend's timeout.
type cleanStream struct {
	sw    *wire.StreamWriter
	rc    *http.ResponseController
	stall time.Duration
}

// Write sends one sanitized event.
func (s cleanStream) Write(clean sanitize.Clean) error {
	defer s.bound()()
	return s.sw.Write(clean.Bytes())
}

// Close sends the signed end event; f carries tokens the caller scrubbed.
func (s cleanStream) Close(f *wire.Failure) error {
	defer s.bound()()
	return s.sw.Close(f)
}

// bound arms the write deadline for one write and returns its disarming: a
// deadline left armed would end a stream whose backend is merely quiet.
func (s cleanStream) bound() (disarm func()) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	return func() { _ = s.rc.SetWriteDeadline(time.Time{}) }
}

// openStream starts the signed event stream answering this request.
func (in *inbound) openStream() cleanStream {
	flusher, _ := in.w.(http.Flusher)
	in.w.Header().Set("Content-Type", wire.StreamContentType)
	in.w.WriteHeader(http.StatusOK)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	return cleanStream{sw: wire.NewStreamWriter(in.w, flush, in.answerTo(), in.n.key),
		rc: http.NewResponseController(in.w), stall: in.st.limits.CallTimeout}
}
