package wire

import (
	"net/http"
	"strconv"
	"time"
)

// HeaderFirstByteWithin carries the caller's time_to_first_byte in whole
// milliseconds. A callee that reads it may hold back its 103 Early Hints
// while the backend is quick (AcceptDelay): the answer itself is then the
// first byte, one frame fewer each way. Without it the callee accepts at once.
const HeaderFirstByteWithin = "Treaty-First-Byte-Within"

// MaxAcceptDelay bounds how long a callee holds back its 103 Early Hints.
const MaxAcceptDelay = 20 * time.Millisecond

// SetFirstByteWithin announces d (at least 1 ms) on a request.
func SetFirstByteWithin(h http.Header, d time.Duration) {
	h[HeaderFirstByteWithin] = []string{strconv.FormatInt(max(d.Milliseconds(), 1), 10)}
}

// AcceptDelay is how long a callee may wait before it tells the caller that
// its call was accepted: a tenth of the caller's announced time_to_first_byte,
// at most MaxAcceptDelay, so at least nine tenths of the caller's bound are
// left for the network and the stages before the backend. It is zero (accept
// at once) when the header is absent, repeated, or not a number of
// milliseconds within the limits' range (1 ms to 10 min).
func AcceptDelay(h http.Header) time.Duration {
	v := h[HeaderFirstByteWithin]
	if len(v) != 1 || len(v[0]) > 9 {
		return 0
	}
	ms, err := strconv.ParseUint(v[0], 10, 32)
	if err != nil || ms < 1 || ms > uint64((10*time.Minute).Milliseconds()) {
		return 0
	}
	return min(time.Duration(ms)*time.Millisecond/10, MaxAcceptDelay)
}
