package wire

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

// Event is one line of a stream response (NDJSON, StreamContentType).
// Data events carry Seq 1, 2, 3, ... and Data. The last event has End set,
// the next Seq, an optional Failure, and Sig: the callee's ed25519 signature
// over the whole stream (see streamSigningInput), which makes the stream
// itself a receipt.
type Event struct {
	Seq     uint64          `json:"seq"`
	Data    json.RawMessage `json:"data,omitempty"`
	End     bool            `json:"end,omitempty"`
	Failure *Failure        `json:"failure,omitempty"`
	Sig     string          `json:"sig,omitempty"`
}

// streamSigningInput is what the End event's Sig signs:
//
//	"treaty/1 stream\n" + request signature member (":BASE64:") + "\n" +
//	hex(sha256 of every data line exactly as sent, each with its "\n") + "\n" +
//	JSON of the End event without "sig"
//
// It cannot be confused with an RFC 9421 signature base, which always starts
// with a quoted component identifier.
func streamSigningInput(binding string, sum []byte, end Event) ([]byte, error) {
	end.Sig = ""
	ej, err := json.Marshal(end)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 32+len(binding)+2*len(sum)+len(ej))
	b = append(b, Tag+" stream\n"...)
	b = append(b, binding...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, sum)
	b = append(b, '\n')
	return append(b, ej...), nil
}

// requestBinding returns the serialized "treaty" member of a Signature
// header, the same value a response covers as "signature";req;key="treaty".
func requestBinding(sigHeader string) (string, error) {
	sig, err := parseSignatureValue(sigHeader, Label)
	if err != nil {
		return "", err
	}
	return ":" + base64.StdEncoding.EncodeToString(sig) + ":", nil
}

// StreamWriter writes a signed event stream for one verified request. It is
// not safe for concurrent use; one goroutine (the handler) owns it.
type StreamWriter struct {
	w       io.Writer
	flush   func()
	key     identity.PrivateKey
	binding string
	seq     uint64
	h       hash.Hash
	err     error // sticky
	closed  bool
}

// NewStreamWriter starts a stream answering req, signed with key. flush, if
// not nil, is called after every event (e.g. http.Flusher.Flush). A request
// whose Signature cannot be bound makes every Write and Close fail.
func NewStreamWriter(w io.Writer, flush func(), req Request, key identity.PrivateKey) *StreamWriter {
	s := &StreamWriter{w: w, flush: flush, key: key, h: sha256.New()}
	s.binding, s.err = requestBinding(req.Signature)
	if s.err == nil && key.IsZero() {
		s.err = errors.New("wire: stream: zero key")
	}
	return s
}

// Write sends one data event with the next sequence number. data must be
// valid JSON; it is compacted onto one line.
func (s *StreamWriter) Write(data json.RawMessage) error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return errors.New("wire: stream: write after close")
	}
	// A caller refuses a line or a count over the wire's limits and ends
	// the call: refuse the event here instead, so the backend's output is
	// what failed, not this node's answer.
	lim := DefaultLimits()
	if s.seq+1 >= uint64(lim.MaxStreamEvents) { // the End event counts too
		return &LimitError{Limit: LimitMaxStreamEvents, Max: int64(lim.MaxStreamEvents), Got: int64(s.seq) + 2}
	}
	line, err := appendDataEvent(make([]byte, 0, len(data)+32), s.seq+1, data)
	if err != nil {
		return err
	}
	if int64(len(line)) > lim.MaxEventBytes {
		return &LimitError{Limit: LimitMaxEventBytes, Max: lim.MaxEventBytes, Got: int64(len(line))}
	}
	line = append(line, '\n')
	if _, err := s.w.Write(line); err != nil {
		s.err = fmt.Errorf("wire: stream: %w", err)
		return s.err
	}
	s.seq++
	s.h.Write(line)
	if s.flush != nil {
		s.flush()
	}
	return nil
}

// appendDataEvent appends the line json.Marshal writes for Event{Seq: seq,
// Data: data}, refusing data that is not one JSON value. Data that is
// already compact and holds nothing json.Marshal escapes in raw JSON (<, >,
// &, U+2028, U+2029) goes in as is, without Marshal's second scan of it.
func appendDataEvent(b []byte, seq uint64, data json.RawMessage) ([]byte, error) {
	valid, compact := jsonsyntax.ValidCompact(data)
	if !valid {
		return nil, errors.New("wire: stream: event data is not valid JSON")
	}
	if !compact || bytes.ContainsAny(data, "<>&") || bytes.Contains(data, []byte("\u2028")) || bytes.Contains(data, []byte("\u2029")) {
		line, err := json.Marshal(Event{Seq: seq, Data: data})
		if err != nil {
			return nil, fmt.Errorf("wire: stream: %w", err)
		}
		return append(b, line...), nil
	}
	b = strconv.AppendUint(append(b, `{"seq":`...), seq, 10)
	b = append(append(b, `,"data":`...), data...)
	return append(b, '}'), nil
}

// Close writes the signed End event, carrying failure if the stream ended
// early (nil for success). Close is idempotent: later calls return nil.
func (s *StreamWriter) Close(failure *Failure) error {
	if s.closed {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	s.closed = true
	if failure != nil {
		if err := failure.validate(); err != nil {
			return fmt.Errorf("wire: stream: %w", err)
		}
		f := *failure
		failure = &f
	}
	end := Event{Seq: s.seq + 1, End: true, Failure: failure}
	msg, err := streamSigningInput(s.binding, s.h.Sum(nil), end)
	if err != nil {
		return fmt.Errorf("wire: stream: %w", err)
	}
	end.Sig = base64.StdEncoding.EncodeToString(s.key.Sign(msg))
	line, err := json.Marshal(end)
	if err != nil {
		return fmt.Errorf("wire: stream: %w", err)
	}
	if _, err := s.w.Write(append(line, '\n')); err != nil {
		s.err = fmt.Errorf("wire: stream: %w", err)
		return s.err
	}
	if s.flush != nil {
		s.flush()
	}
	return nil
}

// StreamReader reads and checks a stream answering sent, signed by callee.
// Data events are returned as they arrive, before the End signature can be
// checked: treat them as provisional until Next returns the verified End
// event. Not safe for concurrent use.
type StreamReader struct {
	br        *bufio.Reader
	binding   string
	callee    identity.PublicKey
	key       *identity.ExpandedKey // callee's expansion, or nil: verify with callee
	maxEvents int
	maxBytes  int64
	next      uint64 // sequence number expected next
	count     int
	h         hash.Hash
	done      bool
	err       error // sticky
}

// NewStreamReader reads events from r under lim's MaxStreamEvents and
// MaxEventBytes (zero fields: defaults).
func NewStreamReader(r io.Reader, sent Sent, callee identity.PublicKey, lim Limits) *StreamReader {
	lim = lim.WithDefaults()
	s := &StreamReader{
		br:        bufio.NewReaderSize(r, 4096),
		callee:    callee,
		maxEvents: lim.MaxStreamEvents,
		maxBytes:  lim.MaxEventBytes,
		next:      1,
		h:         sha256.New(),
	}
	s.binding, s.err = requestBinding(sent.Signature)
	if s.err == nil && callee.IsZero() {
		s.err = fail(ReasonKeyMismatch, "no callee key")
	}
	return s
}

// NewStreamReader is the package's NewStreamReader with callee's expanded
// key from v's cache: the same checks and verdicts, less work per stream.
func (v *Verifier) NewStreamReader(r io.Reader, sent Sent, callee identity.PublicKey, lim Limits) *StreamReader {
	s := NewStreamReader(r, sent, callee, lim)
	if s.err == nil {
		s.key = v.keys.get(callee)
	}
	return s
}

// Next returns the next event. After the verified End event it returns
// io.EOF. Errors are sticky and typed: *Error with ReasonStreamGap,
// ReasonStreamReorder, ReasonStreamDuplicate, ReasonStreamTruncated (EOF
// before End), ReasonBadSignature (End signature), ReasonMalformed; or
// *LimitError for max_event_bytes and max_stream_events.
func (s *StreamReader) Next() (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	ev, err := s.next1()
	if err != nil {
		s.err = err
		return Event{}, err
	}
	return ev, nil
}

func (s *StreamReader) next1() (Event, error) {
	if s.done {
		if _, err := s.br.Peek(1); err == io.EOF {
			return Event{}, io.EOF
		} else if err != nil {
			return Event{}, fmt.Errorf("wire: stream read: %w", err)
		}
		return Event{}, fail(ReasonMalformed, "data after the End event")
	}
	line, err := s.readLine()
	if err != nil {
		return Event{}, err
	}
	s.count++
	if s.count > s.maxEvents {
		return Event{}, &LimitError{Limit: LimitMaxStreamEvents, Max: int64(s.maxEvents), Got: int64(s.count)}
	}
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return Event{}, fail(ReasonMalformed, "event %d: %v", s.count, err)
	}
	switch {
	case ev.Seq == 0:
		return Event{}, fail(ReasonMalformed, "event %d has no seq", s.count)
	case ev.Seq > s.next:
		return Event{}, fail(ReasonStreamGap, "seq %d arrived, expected %d", ev.Seq, s.next)
	case ev.Seq == s.next-1:
		return Event{}, fail(ReasonStreamDuplicate, "seq %d repeated", ev.Seq)
	case ev.Seq < s.next:
		return Event{}, fail(ReasonStreamReorder, "seq %d arrived after %d", ev.Seq, s.next-1)
	}
	if !ev.End {
		if ev.Sig != "" || ev.Failure != nil {
			return Event{}, fail(ReasonMalformed, "data event %d carries sig or failure", ev.Seq)
		}
		// The End signature covers these bytes, so they must have one
		// reading: exactly what StreamWriter writes for this event (no
		// duplicate, case-folded or unknown keys that parsers resolve
		// differently).
		if want, err := appendDataEvent(make([]byte, 0, len(line)), ev.Seq, ev.Data); err != nil || !bytes.Equal(want, line) {
			return Event{}, fail(ReasonMalformed, "data event %d is not in the form StreamWriter writes", ev.Seq)
		}
		s.h.Write(line)
		s.h.Write([]byte{'\n'})
		s.next++
		return ev, nil
	}
	if len(ev.Data) != 0 {
		return Event{}, fail(ReasonMalformed, "End event carries data")
	}
	if ev.Failure != nil {
		if err := ev.Failure.validate(); err != nil {
			return Event{}, err
		}
	}
	if canon, err := json.Marshal(ev); err != nil || !bytes.Equal(canon, line) {
		return Event{}, fail(ReasonMalformed, "End event is not in the form StreamWriter writes")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(ev.Sig)
	if err != nil || len(sig) != 64 {
		return Event{}, fail(ReasonMalformed, "End event sig is not a base64 ed25519 signature")
	}
	msg, err := streamSigningInput(s.binding, s.h.Sum(nil), ev)
	if err != nil {
		return Event{}, fail(ReasonMalformed, "End event: %v", err)
	}
	var ok bool
	if s.key != nil {
		ok = s.key.Verify(msg, sig)
	} else {
		ok = s.callee.Verify(msg, sig)
	}
	if !ok {
		return Event{}, fail(ReasonBadSignature, "End signature over %d events does not verify with callee %s for this request", ev.Seq-1, s.callee.Short())
	}
	s.done = true
	return ev, nil
}

// readLine returns the next line without its "\n", refusing lines longer
// than maxBytes before buffering them.
func (s *StreamReader) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := s.br.ReadSlice('\n')
		if int64(len(buf)+len(chunk)) > s.maxBytes+1 {
			return nil, &LimitError{Limit: LimitMaxEventBytes, Max: s.maxBytes, Got: -1}
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			if len(buf) == 0 {
				return nil, fail(ReasonStreamTruncated, "stream ended after %d events without End", s.next-1)
			}
			return nil, fail(ReasonStreamTruncated, "stream ended inside event %d", s.next)
		default:
			return nil, fmt.Errorf("wire: stream read: %w", err)
		}
	}
}
