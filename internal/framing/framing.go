// Package framing is the byte format of treaty/2, the lean framing that
// carries federation requests and answers between two nodes (ADR 29): a
// fixed 10-byte frame header, then a payload of at most the size its type
// allows. It only encodes and decodes; streams, flow control and timeouts are
// the transport's.
//
// A frame header is the payload length (4 bytes), the type (1), flags (1)
// and the stream ID (4), big-endian. A header block (HEADERS payload) is a
// list of fields, each a uvarint name length, the name, a uvarint value
// length and the value; pseudo-fields (":method", ":authority", ":path" on a
// request, ":status" on an answer) come first, as in HTTP/2. There is no
// compression: the signature headers are new on every request.
//
// Every decoding error is a *Error naming what was wrong; a Reader never
// allocates more than its frame limit, whatever a length field claims.
package framing

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Type is a frame's type.
type Type uint8

const (
	TypeHeaders  Type = 0 // a request's or an answer's header block; 1xx answers too
	TypeData     Type = 1 // body bytes, within the receiver's credit
	TypeReset    Type = 2 // the stream is abandoned; payload: a 4-byte Code
	TypeWindow   Type = 3 // more credit for a stream's body, or on stream 0 for all bodies; payload: a 4-byte increment
	TypePing     Type = 4 // stream 0; payload: 8 opaque bytes, echoed with FlagAck
	TypeGoAway   Type = 5 // stream 0; payload: the last stream ID processed, a 4-byte Code
	TypeSettings Type = 6 // stream 0, server to client, first frame; payload: Settings
	numTypes          = 7
)

func (t Type) String() string {
	switch t {
	case TypeHeaders:
		return "HEADERS"
	case TypeData:
		return "DATA"
	case TypeReset:
		return "RESET"
	case TypeWindow:
		return "WINDOW"
	case TypePing:
		return "PING"
	case TypeGoAway:
		return "GOAWAY"
	case TypeSettings:
		return "SETTINGS"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Flags modify a frame.
type Flags uint8

const (
	FlagEnd Flags = 1 // HEADERS, DATA: the sender's last frame on this stream
	FlagAck Flags = 2 // PING: an answer
)

// Code says why a stream was reset or a connection ended.
type Code uint32

const (
	CodeNone     Code = 0 // no error: the stream or connection is done
	CodeProtocol Code = 1 // the peer broke the protocol
	CodeInternal Code = 2 // this side failed
	CodeRefused  Code = 3 // the stream was not processed at all: safe to retry
	CodeCancel   Code = 4 // the sender no longer wants the stream
	CodeTooLarge Code = 5 // a header block or body exceeded a limit
	CodeTimeout  Code = 6 // a deadline passed (write deadline, idle)
)

func (c Code) String() string {
	switch c {
	case CodeNone:
		return "no error"
	case CodeProtocol:
		return "protocol error"
	case CodeInternal:
		return "internal error"
	case CodeRefused:
		return "refused stream"
	case CodeCancel:
		return "cancelled"
	case CodeTooLarge:
		return "too large"
	case CodeTimeout:
		return "timeout"
	}
	return fmt.Sprintf("code(%d)", uint32(c))
}

const (
	// HeaderLen is the size of a frame header.
	HeaderLen = 10
	// MaxData is the largest DATA payload.
	MaxData = 64 << 10
	// MaxHeaderBlock is the largest HEADERS payload a Reader accepts at all;
	// the header list limit (ParseFields) is usually far lower.
	MaxHeaderBlock = 1 << 20
	// FieldOverhead is added to each field's name and value lengths when a
	// header list is measured against its limit, as HTTP/2 does (RFC 9113
	// §6.5.2), so many tiny fields cost their bookkeeping.
	FieldOverhead = 32
	// InitialWindow is each stream's body credit, in each direction, before
	// any WINDOW frame.
	InitialWindow = 128 << 10
	// ConnWindow is the credit of all bodies on a connection together, in
	// each direction: what a receiver may have to buffer per connection.
	ConnWindow = 1 << 20
	// MaxWindow bounds a stream's credit: more is a protocol error.
	MaxWindow = 1<<31 - 1
)

// Error is a malformed frame or header block.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return "framing: " + e.Msg }

func fail(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Frame is one decoded frame. Payload is valid until the Reader's next call.
type Frame struct {
	Type    Type
	Flags   Flags
	Stream  uint32
	Payload []byte
}

// AppendHeader appends a frame header for a payload of n bytes.
func AppendHeader(dst []byte, t Type, f Flags, stream uint32, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(t), byte(f))
	return binary.BigEndian.AppendUint32(dst, stream)
}

// SetStream sets the stream ID of the frame whose header starts b.
func SetStream(b []byte, stream uint32) { binary.BigEndian.PutUint32(b[6:HeaderLen], stream) }

// AppendFrame appends a whole frame.
func AppendFrame(dst []byte, t Type, f Flags, stream uint32, payload []byte) []byte {
	return append(AppendHeader(dst, t, f, stream, len(payload)), payload...)
}

// AppendUint32Frame appends a frame whose payload is one 4-byte value
// (RESET, WINDOW).
func AppendUint32Frame(dst []byte, t Type, stream uint32, v uint32) []byte {
	dst = AppendHeader(dst, t, 0, stream, 4)
	return binary.BigEndian.AppendUint32(dst, v)
}

// AppendGoAway appends a GOAWAY frame.
func AppendGoAway(dst []byte, last uint32, c Code) []byte {
	dst = AppendHeader(dst, TypeGoAway, 0, 0, 8)
	dst = binary.BigEndian.AppendUint32(dst, last)
	return binary.BigEndian.AppendUint32(dst, uint32(c))
}

// Settings is what a server tells its client first.
type Settings struct {
	MaxStreams uint32 // concurrent streams the server accepts; at least 1
}

const settingsLen = 4

// AppendSettings appends a SETTINGS frame.
func AppendSettings(dst []byte, s Settings) []byte {
	dst = AppendHeader(dst, TypeSettings, 0, 0, settingsLen)
	return binary.BigEndian.AppendUint32(dst, s.MaxStreams)
}

// ParseSettings decodes a SETTINGS payload. Next has checked its length;
// a caller that did not gets an error, not a panic.
func ParseSettings(p []byte) (Settings, error) {
	if len(p) != settingsLen {
		return Settings{}, fail(CodeProtocol, "SETTINGS of %d bytes, want %d", len(p), settingsLen)
	}
	s := Settings{MaxStreams: binary.BigEndian.Uint32(p)}
	if s.MaxStreams == 0 {
		return s, fail(CodeProtocol, "SETTINGS with no streams")
	}
	return s, nil
}

// Uint32 decodes a RESET or WINDOW payload (its length is checked by Next).
func Uint32(p []byte) uint32 { return binary.BigEndian.Uint32(p) }

// ParseGoAway decodes a GOAWAY payload.
func ParseGoAway(p []byte) (last uint32, c Code) {
	return binary.BigEndian.Uint32(p), Code(binary.BigEndian.Uint32(p[4:]))
}

// Reader reads frames from a buffered connection.
type Reader struct {
	r        *bufio.Reader
	maxBlock int
	hdr      [HeaderLen]byte
	buf      []byte
}

// NewReader reads frames from r, refusing HEADERS payloads over maxBlock
// bytes (at most MaxHeaderBlock).
func NewReader(r io.Reader, maxBlock int) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 32<<10)
	}
	return &Reader{r: br, maxBlock: min(maxBlock, MaxHeaderBlock)}
}

// Next reads the next frame. A frame too long for its type, with a payload
// of the wrong size or on the wrong stream is a *Error; I/O errors are
// returned as they are (io.EOF at a frame boundary, io.ErrUnexpectedEOF
// inside a frame).
func (r *Reader) Next() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:4])
	f := Frame{Type: Type(r.hdr[4]), Flags: Flags(r.hdr[5]), Stream: binary.BigEndian.Uint32(r.hdr[6:])}
	if err := r.check(f, n); err != nil {
		return Frame{}, err
	}
	buf := r.buf
	if cap(buf) < int(n) {
		buf = make([]byte, n)
		if n <= MaxData {
			// Kept for the next frames; a larger header block (up to
			// maxBlock) is rare and not held for the connection's life.
			r.buf = buf
		}
	}
	f.Payload = buf[:n]
	if _, err := io.ReadFull(r.r, f.Payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return f, nil
}

// check validates a frame header before its payload is read.
func (r *Reader) check(f Frame, n uint32) error {
	if f.Type >= numTypes {
		return fail(CodeProtocol, "unknown frame type %d", uint8(f.Type))
	}
	onStream0 := f.Type == TypePing || f.Type == TypeGoAway || f.Type == TypeSettings
	if f.Type != TypeWindow && onStream0 != (f.Stream == 0) {
		return fail(CodeProtocol, "%s frame on stream %d", f.Type, f.Stream)
	}
	var want int64 = -1 // fixed size, if any
	var most int64
	switch f.Type {
	case TypeHeaders:
		most = int64(r.maxBlock)
	case TypeData:
		most = MaxData
	case TypeReset, TypeWindow:
		want = 4
	case TypePing, TypeGoAway:
		want = 8
	case TypeSettings:
		want = settingsLen
	}
	if want >= 0 && int64(n) != want {
		return fail(CodeProtocol, "%s frame of %d bytes, want %d", f.Type, n, want)
	}
	if want < 0 && int64(n) > most {
		return fail(CodeTooLarge, "%s frame of %d bytes, limit %d", f.Type, n, most)
	}
	return nil
}

// AppendField appends one header field. Names are written as given: the
// caller lower-cases them.
func AppendField(dst []byte, name, value string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	return append(dst, value...)
}

// ParseFields calls fn for each field of a header block, in order, after
// checking it: names lower-case HTTP tokens (pseudo-fields only before the
// others), values valid HTTP field values, and the list within max bytes
// (name + value + FieldOverhead per field). fn's error stops the parse and is
// returned as it is.
func ParseFields(p []byte, max int, fn func(name, value string) error) error {
	size, regular := 0, false
	for len(p) > 0 {
		name, rest, err := str(p, "name")
		if err != nil {
			return err
		}
		value, rest, err := str(rest, "value")
		if err != nil {
			return err
		}
		p = rest
		size += len(name) + len(value) + FieldOverhead
		if size > max {
			return fail(CodeTooLarge, "header list over %d bytes", max)
		}
		pseudo := strings.HasPrefix(name, ":")
		switch {
		case pseudo && regular:
			return fail(CodeProtocol, "pseudo-field %q after a regular field", name)
		case pseudo:
			if !validName(name[1:]) {
				return fail(CodeProtocol, "invalid pseudo-field name %q", name)
			}
		default:
			regular = true
			if !validName(name) {
				return fail(CodeProtocol, "invalid field name %q", name)
			}
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return fail(CodeProtocol, "invalid value of field %q", name)
		}
		if err := fn(name, value); err != nil {
			return err
		}
	}
	return nil
}

// validName: a non-empty HTTP token without upper-case letters.
func validName(s string) bool {
	if s == "" || !httpguts.ValidHeaderFieldName(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}

// str reads one length-prefixed string.
func str(p []byte, what string) (string, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return "", nil, fail(CodeProtocol, "malformed %s length", what)
	}
	p = p[k:]
	if n > uint64(len(p)) {
		return "", nil, fail(CodeProtocol, "%s of %d bytes past the block's end", what, n)
	}
	return string(p[:n]), p[n:], nil
}

// IsProtocolError reports whether err is a *Error.
func IsProtocolError(err error) bool {
	var fe *Error
	return errors.As(err, &fe)
}
